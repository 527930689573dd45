//! The HTTP API: `POST /v1/events`, `GET /v1/usage`, `GET /v1/usage/top`.
//! Every request gets a JSON response (a CloudEvents request that counted
//! its events: 204, no body, as OpenMeter answers); nothing here panics.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{json, Value};
use tollgate_app::top::{parse_top_query, top, TopQuery};
use tollgate_app::usage::{parse_usage_query, query_usage, QueryError, Source};
use tollgate_app::windows::PlanWindows;
use tollgate_core::{Aggregation, MeterName, Region, UnixMillis};
use tollgate_idempotency::{Clock, Deadline, Idempotency, IdempotencyError, SystemClock};
use tollgate_store::{CommitStore, UsageStore};

use crate::body::{parse_request, Limits};
use crate::cloudevents::{self, Problem};
use crate::commit::{commit, CommitError, CommitOutcome};
use crate::config::Config;
use crate::meters::{MeterCache, Meters};
use crate::request::EventsRequest;
use crate::response::ApiResponse;
use crate::route::{route, Route};
use crate::stores::Stores;
use crate::validate::{validate_all, Checked, Rules};

/// The longest `Idempotency-Key` header value.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

fn unavailable(what: &str, err: &dyn std::fmt::Display) -> ApiResponse {
    tracing::error!(error = %err, "{what} failed");
    let mut response = ApiResponse::error(
        503,
        "unavailable",
        format!("{what} failed; retry the whole request (events counted already are reported as duplicate)"),
    );
    response.body["error"]["detail"] = Value::String(err.to_string());
    response
}

fn query_error(e: QueryError) -> ApiResponse {
    match e {
        QueryError::Param { .. } => ApiResponse::error(400, "bad_parameter", e.to_string()),
        QueryError::Store(inner) => unavailable("reading usage", &inner),
    }
}

/// The ingest function: its configuration and stores, built once.
#[derive(Debug, Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
    /// Every region's Usage table, for usage queries (empty: this region's
    /// table only, which then must hold every region's copies).
    regions: Arc<Vec<(Region, UsageStore)>>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    usage: UsageStore,
    meters: MeterCache,
    /// The windows each meter is counted in, as the plans say.
    windows: PlanWindows,
    commits: CommitStore,
    requests: Idempotency,
    clock: Arc<dyn Clock>,
}

impl Ingest {
    /// The function on `stores` (their idempotency records built with
    /// [`Stores::marker_config`] and [`Stores::request_config`] on the
    /// system clock), with the system clock.
    pub fn new(stores: Stores, config: Config) -> Self {
        Self::with_clock(stores, config, SystemClock)
    }

    /// The same function, reading usage from every region's own Usage table
    /// (`stores`: one per region of the deployment, this one included).
    /// Needed when quota-sync copies only hot counters
    /// (`TOLLGATE_REPLICATION=hot`): the local table then lacks the other
    /// regions' cold counters.
    pub fn reading_regions(mut self, stores: Vec<(Region, UsageStore)>) -> Self {
        self.regions = Arc::new(stores);
        self
    }

    /// The function with an injected clock (tests move it to expire
    /// markers; the stores' idempotency records are built on the same clock).
    pub fn with_clock<C: Clock + 'static>(stores: Stores, config: Config, clock: C) -> Self {
        Ingest {
            inner: Arc::new(Inner {
                usage: stores.commits.usage().clone(),
                meters: MeterCache::new(stores.keys.clone(), config.meter_cache_ttl),
                windows: PlanWindows::new(
                    stores.keys,
                    config.plan_cache_ttl,
                    &config.windows,
                    &config.windows,
                    config.anonymous_plan.clone(),
                ),
                commits: stores.commits,
                requests: stores.requests,
                clock: Arc::new(clock),
                config,
            }),
            regions: Arc::new(Vec::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn now(&self) -> UnixMillis {
        i64::try_from(self.inner.clock.now_ms()).unwrap_or(i64::MAX)
    }

    /// Handles one HTTP request (API Gateway HTTP API payload 2.0 or REST).
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let method = req.method().as_str().to_owned();
        let param = |name: &str| {
            req.query_string_parameters_ref()
                .and_then(|q| q.first(name))
                .map(str::to_owned)
        };
        let response = match route(&method, &path) {
            Route::Events => {
                let key = req
                    .headers()
                    .get("idempotency-key")
                    .map(|v| v.to_str().map(str::to_owned));
                let deadline = req.lambda_context_ref().map(|c| c.deadline);
                match (EventsRequest::from_http(&req), key) {
                    (Err(header), _) => ApiResponse::error(
                        400,
                        "bad_header",
                        format!("header {header}: not valid percent-encoded UTF-8"),
                    ),
                    (Ok(events), Some(Ok(k))) => self.post_once(&events, &k, deadline.into()).await,
                    (Ok(_), Some(Err(_))) => ApiResponse::error(
                        400,
                        "bad_idempotency_key",
                        "the Idempotency-Key header must be visible ASCII",
                    ),
                    (Ok(events), None) => self.post(&events).await,
                }
            }
            Route::Top => match parse_top_query(param) {
                Ok(q) => self.top(&q).await,
                Err(e) => query_error(e),
            },
            Route::Usage => match parse_usage_query(param, self.now()) {
                Ok(q) => match query_usage(&self.usage_sources(), &q).await {
                    Ok(report) => ApiResponse {
                        status: 200,
                        body: serde_json::to_value(report).unwrap_or(Value::Null),
                    },
                    Err(e) => query_error(e),
                },
                Err(e) => query_error(e),
            },
            Route::MethodNotAllowed { allowed } => {
                ApiResponse::error(405, "method_not_allowed", format!("use {allowed}"))
            }
            Route::NotFound => ApiResponse::error(
                404,
                "not_found",
                format!("no route for {method} {path}: POST /v1/events, GET /v1/usage, GET /v1/usage/top"),
            ),
        };
        crate::metrics::emit(&response);
        response.into_http()
    }

    /// `POST /v1/events` with an `Idempotency-Key` and a body of
    /// tollgate's format (or CloudEvents as plain JSON): see [`Self::post_once`].
    pub async fn post_events_once(
        &self,
        body: &[u8],
        key: &str,
        deadline: Deadline,
    ) -> ApiResponse {
        self.post_once(&EventsRequest::json(body), key, deadline)
            .await
    }

    /// `POST /v1/events` with an `Idempotency-Key`: the first request with
    /// a key runs; later ones (with the same body and mode-choosing
    /// headers) get its stored response.
    pub async fn post_once(
        &self,
        events: &EventsRequest<'_>,
        key: &str,
        deadline: Deadline,
    ) -> ApiResponse {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
            return ApiResponse::error(
                400,
                "bad_idempotency_key",
                format!("the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
            );
        }
        let request = json!({"key": key, "body": events.fingerprint()});
        let result = self
            .inner
            .requests
            .run(&request, deadline, || async {
                let response = self.post_inner(events).await?;
                Ok::<_, CommitError>(response)
            })
            .await;
        match result {
            Ok(response) => response,
            Err(IdempotencyError::AlreadyInProgress { .. }) => ApiResponse::error(
                409,
                "in_progress",
                "a request with this Idempotency-Key is being processed; retry later",
            ),
            Err(IdempotencyError::PayloadMismatch { .. }) => ApiResponse::error(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different body",
            ),
            Err(IdempotencyError::Handler(e) | IdempotencyError::ReplayedFailure(e)) => {
                unavailable("counting the events", &e)
            }
            Err(other) => unavailable("the Idempotency-Key record", &other),
        }
    }

    /// `POST /v1/events` with a body of tollgate's format (or CloudEvents
    /// as plain JSON): see [`Self::post`].
    pub async fn post_events(&self, body: &[u8]) -> ApiResponse {
        self.post(&EventsRequest::json(body)).await
    }

    /// `POST /v1/events`: reads, checks and counts the events of a request
    /// in any of its modes.
    pub async fn post(&self, events: &EventsRequest<'_>) -> ApiResponse {
        match self.post_inner(events).await {
            Ok(r) => r,
            Err(e) => unavailable("counting the events", &e),
        }
    }

    /// The meters, read again (at most once a second) when an event names
    /// one the cache lacks: a meter defined since the cache was filled.
    async fn meters_for(&self, values: &[Value], field: &str) -> Result<Arc<Meters>, CommitError> {
        let meters = self.inner.meters.get().await?;
        let names_unknown = values.iter().any(|v| {
            v.get(field)
                .and_then(Value::as_str)
                .and_then(|m| MeterName::new(m).ok())
                .is_some_and(|m| !meters.contains_key(&m))
        });
        if !names_unknown {
            return Ok(meters);
        }
        Ok(self
            .inner
            .meters
            .get_fresher_than(Duration::from_secs(1))
            .await?)
    }

    fn check(&self, values: &[Value], meters: &Meters, now: UnixMillis) -> Vec<Checked> {
        let config = &self.inner.config;
        let rules = Rules {
            meters,
            now,
            dedupe_window_ms: i64::try_from(config.dedupe_window.as_millis()).unwrap_or(i64::MAX),
            future_tolerance_ms: i64::try_from(config.future_tolerance.as_millis())
                .unwrap_or(i64::MAX),
        };
        validate_all(values, &rules)
    }

    async fn count(
        &self,
        checked: &[Checked],
        now: UnixMillis,
    ) -> Result<CommitOutcome, CommitError> {
        let config = &self.inner.config;
        let valid: Vec<_> = checked
            .iter()
            .filter_map(|c| match c {
                Checked::Valid(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        // The configured windows and the plans' (the plans' last read, or
        // the configured alone, when they cannot be read: never an error).
        let windows = Box::pin(self.inner.windows.current()).await;
        commit(&self.inner.commits, &config.region, &windows, &valid, now).await
    }

    async fn post_inner(&self, events: &EventsRequest<'_>) -> Result<ApiResponse, CommitError> {
        let config = &self.inner.config;
        let limits = Limits {
            max_bytes: config.max_body_bytes,
            max_events: config.max_events,
        };
        let parsed = parse_request(
            events.content_type.as_deref(),
            &events.ce_attributes,
            events.body,
            &limits,
        );
        let (mode, values) = match parsed {
            Ok(v) => v,
            Err(e) => return Ok(ApiResponse::error(e.status(), e.code(), e.to_string())),
        };
        let now = self.now();
        if mode.is_cloudevents() {
            let meters = self.meters_for(&values, "type").await?;
            return self
                .post_cloudevents(&values, &meters, now, events.representation)
                .await;
        }
        let meters = self.meters_for(&values, "meter").await?;
        let checked = self.check(&values, &meters, now);
        let outcome = self.count(&checked, now).await?;
        let (mut accepted, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
        let results: Vec<Value> = checked
            .iter()
            .map(|c| match c {
                Checked::Valid(e) if outcome.new.contains(&e.id) => {
                    accepted += 1;
                    json!({"index": e.index, "id": e.id, "status": "accepted"})
                }
                Checked::Valid(e) => {
                    duplicates += 1;
                    json!({"index": e.index, "id": e.id, "status": "duplicate"})
                }
                Checked::Duplicate { index, id } => {
                    duplicates += 1;
                    json!({"index": index, "id": id, "status": "duplicate"})
                }
                Checked::Rejected(r) => {
                    rejected += 1;
                    let id = values
                        .get(r.index)
                        .and_then(|v| v.get("id"))
                        .and_then(Value::as_str);
                    json!({"index": r.index, "id": id, "status": "rejected", "field": r.field, "reason": r.reason})
                }
            })
            .collect();
        tracing::info!(
            events = values.len(),
            accepted,
            duplicates,
            rejected,
            transactions = outcome.transactions,
            "events processed"
        );
        Ok(ApiResponse {
            status: if rejected == 0 { 200 } else { 207 },
            body: json!({
                "accepted": accepted,
                "duplicates": duplicates,
                "rejected": rejected,
                "results": results,
            }),
        })
    }

    /// CloudEvents: all counted, or (any bad) none and a 400 naming them.
    async fn post_cloudevents(
        &self,
        values: &[Value],
        meters: &Meters,
        now: UnixMillis,
        representation: bool,
    ) -> Result<ApiResponse, CommitError> {
        let refused = |problems: &[Problem]| {
            let (code, message, details) = cloudevents::refusal(problems, values);
            let mut r = ApiResponse::error(400, code, message);
            r.body["error"]["events"] = details;
            r
        };
        let natives = match cloudevents::to_native_all(values, meters, now) {
            Ok(n) => n,
            Err(problems) => return Ok(refused(&problems)),
        };
        let checked = self.check(&natives, meters, now);
        let problems: Vec<Problem> = checked
            .iter()
            .filter_map(|c| match c {
                Checked::Rejected(r) => Some(cloudevents::from_rejection(r)),
                _ => None,
            })
            .collect();
        if !problems.is_empty() {
            return Ok(refused(&problems));
        }
        let outcome = self.count(&checked, now).await?;
        let (mut accepted, mut duplicates) = (0usize, 0usize);
        let results: Vec<Value> = checked
            .iter()
            .filter_map(|c| {
                let (index, status) = match c {
                    Checked::Valid(e) if outcome.new.contains(&e.id) => (e.index, "accepted"),
                    Checked::Valid(e) => (e.index, "duplicate"),
                    Checked::Duplicate { index, .. } => (*index, "duplicate"),
                    Checked::Rejected(_) => return None,
                };
                if status == "accepted" {
                    accepted += 1;
                } else {
                    duplicates += 1;
                }
                let ce = values.get(index);
                let attr = |name: &str| ce.and_then(|e| e.get(name)).cloned();
                Some(json!({"index": index, "source": attr("source"), "id": attr("id"), "status": status}))
            })
            .collect();
        tracing::info!(
            events = values.len(),
            accepted,
            duplicates,
            transactions = outcome.transactions,
            "cloudevents processed"
        );
        Ok(ApiResponse {
            status: if representation { 200 } else { 204 },
            body: json!({
                "accepted": accepted,
                "duplicates": duplicates,
                "rejected": 0,
                "results": results,
            }),
        })
    }

    /// Where usage queries read: every region's own items in its own table,
    /// or everything in this region's table.
    fn usage_sources(&self) -> Vec<Source<'_>> {
        if self.regions.is_empty() {
            return vec![Source {
                store: &self.inner.usage,
                region: None,
            }];
        }
        self.regions
            .iter()
            .map(|(region, store)| Source {
                store,
                region: Some(region),
            })
            .collect()
    }

    /// `GET /v1/usage/top`.
    pub async fn top(&self, q: &TopQuery) -> ApiResponse {
        if !self.inner.config.top_index {
            return ApiResponse::error(
                404,
                "top_index_off",
                "the top index is off in this deployment: set TOLLGATE_TOP_INDEX=true (template parameter TopIndex) to rank identities",
            );
        }
        let aggregation = if q.meter.as_str() == MeterName::REQUESTS {
            Some(Aggregation::Count)
        } else {
            match self.inner.meters.get().await {
                Ok(m) => m.get(&q.meter).map(|d| d.aggregation),
                Err(e) => return unavailable("reading the meters", &e),
            }
        };
        let Some(aggregation) = aggregation else {
            return ApiResponse::error(
                400,
                "bad_parameter",
                format!("parameter meter: unknown meter {:?}", q.meter.as_str()),
            );
        };
        let regions: Vec<(Region, &UsageStore)> = if self.regions.is_empty() {
            let local = &self.inner.usage;
            self.inner
                .config
                .regions
                .iter()
                .map(|r| (r.clone(), local))
                .collect()
        } else {
            self.regions.iter().map(|(r, s)| (r.clone(), s)).collect()
        };
        match top(&regions, aggregation, q).await {
            Ok(report) => ApiResponse {
                status: 200,
                body: serde_json::to_value(report).unwrap_or(Value::Null),
            },
            Err(e) => query_error(e),
        }
    }
}
