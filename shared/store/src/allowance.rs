//! The lease allowances of hard request limits in the Keys table: the
//! DynamoDB adapter of [`Allowances`] (the rules are
//! [`tollgate_core::lease`]'s; `memory::MemoryAllowances` has the
//! same semantics in memory).
//!
//! One item per identity and period in each region's Keys table:
//!
//! | pk | sk | attributes |
//! |---|---|---|
//! | `alw#<identity>` | `<period>` (`day#2026-12-02`) | `left` (units the region may still grant), `taken` (granted so far), `limit` (the limit the item was funded for), `ttl` (period end + 1 day) |
//!
//! A missing item stands for the region's [`initial_share`] of the limit,
//! nothing taken. Every change is one conditional `UpdateItem` whose
//! condition holds only on the state it was computed from, so concurrent
//! containers and regions never grant a unit twice; a failed condition
//! returns the item as it is (`ReturnValuesOnConditionCheckFailure`), and
//! the next attempt starts from there. A take of an existing item with
//! enough left is one write (1 write unit).
//!
//! A pull reads each peer's item in the peer's own region, debits it by
//! [`tollgate_core::lease::pull_amount`] and then credits this region's
//! item by what was debited. Only the credit can create units if it were applied twice, so
//! it is sent without the SDK's retries and retried only when DynamoDB
//! answered that it did not apply it. Units debited but never credited
//! are lost (false denials, logged), never granted twice.

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use tollgate_core::lease::{allowance, initial_share, Leased, Taken};
use tollgate_core::{CoreError, Identity, Period, Region};

use crate::attr::{get_u64, n, s};
use crate::ports::Allowances;
use crate::StoreError;

mod plan;

use plan::{parse, plan_credit, plan_debit, plan_take, Known, Write};

/// Writes a take, a peer's debit or a credit makes at most before it
/// gives up with an error (each failed one found the item changed by a
/// concurrent writer, or was refused by DynamoDB).
pub const MAX_ATTEMPTS: usize = 5;

/// How long an allowance item outlives its period (its `ttl`, for
/// clean-up only: a period that ended is never leased again).
pub const TTL_AFTER_PERIOD_SECS: i64 = 86_400;

/// The partition key of `identity`'s allowance items.
pub fn allowance_pk(identity: &Identity) -> String {
    format!("alw#{identity}")
}

/// The `ttl` (epoch seconds) of an allowance item of `period`.
pub fn allowance_ttl(period: &Period) -> i64 {
    period.end() / 1000 + TTL_AFTER_PERIOD_SECS
}

/// How a conditional write ended.
enum Outcome {
    /// Written; the item's `left` after it.
    Written(Option<u64>),
    /// The condition did not hold: the item as it is.
    Failed(Known),
}

/// A write that failed otherwise; `maybe_applied` when DynamoDB may have
/// applied it all the same (no answer, a timeout).
struct WriteError {
    error: StoreError,
    maybe_applied: bool,
}

impl From<WriteError> for StoreError {
    fn from(e: WriteError) -> Self {
        e.error
    }
}

fn contention(what: &str, leased: &Leased) -> StoreError {
    StoreError::Dynamo {
        operation: "UpdateItem",
        message: format!(
            "the allowance of {} in {} kept changing: {what} gave up after {MAX_ATTEMPTS} attempts",
            leased.key.identity, leased.key.period
        ),
    }
}

/// One region's peer: where its Keys table is reached, and its share's index.
#[derive(Debug, Clone)]
struct Peer {
    region: Region,
    client: Client,
    index: usize,
}

/// The DynamoDB adapter of [`Allowances`]: this region's allowance items
/// in its Keys table, and its peers' in theirs (same table name, each in
/// its own region), reached within a timeout when a pull needs them.
#[derive(Debug, Clone)]
pub struct AllowanceStore {
    local: Client,
    table: String,
    regions: usize,
    index: usize,
    peers: Vec<Peer>,
    peer_timeout: Duration,
}

fn not_a_region(region: &Region) -> StoreError {
    StoreError::Core(CoreError::Setting {
        name: "regions",
        value: region.to_string(),
        expected: "one of the deployment's regions (and a peer other than this region)",
    })
}

impl AllowanceStore {
    /// The allowances of Keys table `table`, written through `local` in
    /// region `this`. `regions` are all the deployment's regions, this one
    /// included, in any order: a region's share of a limit follows its
    /// place among their sorted names, the same in every region. `peers`
    /// are the other regions and clients for them (with short timeouts,
    /// such as [`crate::client::Limits::Peer`]); a pull waits at most
    /// `peer_timeout` for each. Fails when `this` or a peer is not one of
    /// `regions`, or a peer is `this`.
    pub fn new(
        local: Client,
        table: impl Into<String>,
        regions: &[Region],
        this: &Region,
        peers: Vec<(Region, Client)>,
        peer_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let mut sorted: Vec<&Region> = regions.iter().collect();
        sorted.sort();
        sorted.dedup();
        let index_of = |r: &Region| sorted.binary_search(&r).map_err(|_| not_a_region(r));
        let index = index_of(this)?;
        let peers = peers
            .into_iter()
            .map(|(region, client)| {
                if &region == this {
                    return Err(not_a_region(&region));
                }
                Ok(Peer {
                    index: index_of(&region)?,
                    region,
                    client,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowanceStore {
            local,
            table: table.into(),
            regions: sorted.len(),
            index,
            peers,
            peer_timeout,
        })
    }

    /// This region's share of `limit` at the start of a period.
    pub fn initial_share(&self, limit: u64) -> u64 {
        initial_share(allowance(limit), self.regions, self.index)
    }

    /// One conditional `UpdateItem` of `leased`'s item through `client`;
    /// `retries: false` sends it once, without the SDK's retries.
    async fn write(
        &self,
        client: &Client,
        leased: &Leased,
        write: &Write,
        retries: bool,
    ) -> Result<Outcome, WriteError> {
        let mut req = client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(allowance_pk(&leased.key.identity)))
            .key("sk", s(leased.key.period.to_string()))
            .update_expression(write.update)
            .condition_expression(write.condition)
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let expressions = [write.update, write.condition];
        for (placeholder, name) in [
            ("#left", "left"),
            ("#taken", "taken"),
            ("#limit", "limit"),
            ("#owed", "owed"),
            ("#ttl", "ttl"),
        ] {
            if expressions.iter().any(|e| e.contains(placeholder)) {
                req = req.expression_attribute_names(placeholder, name);
            }
        }
        for (placeholder, value) in &write.values {
            req = req.expression_attribute_values(*placeholder, n(value));
        }
        if write.update.contains(":ttl") {
            req = req.expression_attribute_values(":ttl", n(allowance_ttl(&leased.key.period)));
        }
        let result = if retries {
            req.send().await
        } else {
            let once = aws_sdk_dynamodb::config::Builder::default()
                .retry_config(RetryConfig::standard().with_max_attempts(1));
            req.customize().config_override(once).send().await
        };
        match result {
            Ok(out) => Ok(Outcome::Written(
                out.attributes.as_ref().and_then(|a| get_u64(a, "left")),
            )),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(c) => match c.item {
                    Some(item) if !item.is_empty() => parse(&item)
                        .map(|a| Outcome::Failed(Known::Item(a)))
                        .map_err(|error| WriteError {
                            error,
                            maybe_applied: false,
                        }),
                    _ => Ok(Outcome::Failed(Known::Absent)),
                },
                other => Err(WriteError {
                    error: StoreError::dynamo("UpdateItem", other),
                    maybe_applied: false,
                }),
            },
            Err(e) => Err(WriteError {
                maybe_applied: !matches!(e, SdkError::ConstructionFailure(_)),
                error: StoreError::dynamo("UpdateItem", e),
            }),
        }
    }

    async fn take_local(&self, leased: &Leased, want: u64) -> Result<Taken, StoreError> {
        let mut known = Known::Nothing;
        for _ in 0..MAX_ATTEMPTS {
            let (write, planned) =
                match plan_take(known, leased.limit, want, self.regions, self.index) {
                    Ok(w) => w,
                    Err(spent) => return Ok(spent),
                };
            match self.write(&self.local, leased, &write, true).await? {
                Outcome::Written(left) => {
                    return Ok(Taken {
                        granted: planned.granted,
                        left: left.unwrap_or(planned.left),
                    })
                }
                Outcome::Failed(now) => known = now,
            }
        }
        Err(contention("a take", leased))
    }

    /// Reads a peer's item and debits it; the units moved.
    async fn debit_peer(&self, peer: &Peer, leased: &Leased) -> Result<u64, StoreError> {
        let out = peer
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(allowance_pk(&leased.key.identity)))
            .key("sk", s(leased.key.period.to_string()))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", e))?;
        let mut known = match out.item {
            Some(item) => Known::Item(parse(&item)?),
            None => Known::Absent,
        };
        for _ in 0..MAX_ATTEMPTS {
            let Some((write, m)) = plan_debit(known, leased.limit, self.regions, peer.index) else {
                return Ok(0);
            };
            match self.write(&peer.client, leased, &write, true).await? {
                Outcome::Written(_) => return Ok(m),
                Outcome::Failed(now) => known = now,
            }
        }
        Err(contention("a peer's debit", leased))
    }

    /// What every reachable peer gave up: the peers in parallel, each
    /// within the peer timeout; a peer that fails is skipped.
    async fn debit_peers(&self, leased: &Leased) -> u64 {
        let debits = self.peers.iter().map(|peer| async move {
            match tokio::time::timeout(self.peer_timeout, self.debit_peer(peer, leased)).await {
                Ok(Ok(m)) => m,
                Ok(Err(error)) => {
                    tracing::warn!(
                        identity = %leased.key.identity,
                        period = %leased.key.period,
                        peer = %peer.region,
                        %error,
                        "allowance pull skipped a peer that failed (its allowance stays with it)"
                    );
                    0
                }
                Err(_) => {
                    tracing::warn!(
                        identity = %leased.key.identity,
                        period = %leased.key.period,
                        peer = %peer.region,
                        timeout_ms = self.peer_timeout.as_millis() as u64,
                        "allowance pull skipped a peer that did not answer in time \
                         (a debit it applied meanwhile is lost, never granted)"
                    );
                    0
                }
            }
        });
        futures::future::join_all(debits).await.into_iter().sum()
    }

    /// Credits this region's item with `moved` units debited from peers,
    /// each write sent once and repeated only when it certainly did not
    /// apply, so a credit is never applied twice.
    async fn credit(&self, leased: &Leased, moved: u64) -> Result<(), StoreError> {
        let mut known = Known::Nothing;
        let mut last = None;
        for _ in 0..MAX_ATTEMPTS {
            let write = plan_credit(known, leased.limit, moved, self.regions, self.index);
            match self.write(&self.local, leased, &write, false).await {
                Ok(Outcome::Written(_)) => return Ok(()),
                Ok(Outcome::Failed(now)) => known = now,
                Err(e) if e.maybe_applied => {
                    tracing::error!(
                        identity = %leased.key.identity,
                        period = %leased.key.period,
                        lost = moved,
                        error = %e.error,
                        "allowance credit may not have applied and is not repeated: \
                         up to {moved} pulled units are lost (false denials, never an overshoot)"
                    );
                    return Err(e.error);
                }
                Err(e) => last = Some(e.error),
            }
        }
        tracing::error!(
            identity = %leased.key.identity,
            period = %leased.key.period,
            lost = moved,
            "allowance credit failed: {moved} pulled units are lost \
             (false denials, never an overshoot)"
        );
        Err(last.unwrap_or_else(|| contention("a credit", leased)))
    }
}

impl Allowances for AllowanceStore {
    /// One `UpdateItem` when the item exists, is funded for `leased.limit`
    /// and has `want` left; otherwise one more per state found (creating,
    /// re-funding or taking the rest), at most [`MAX_ATTEMPTS`] in all.
    async fn take(&self, leased: &Leased, want: u64) -> Result<Taken, StoreError> {
        self.take_local(leased, want).await
    }

    /// Per reachable peer a `GetItem` and (when it has something to give)
    /// one `UpdateItem` in its region; then one `UpdateItem` crediting this
    /// region (when anything moved) and the take.
    async fn pull(&self, leased: &Leased, want: u64) -> Result<Taken, StoreError> {
        let moved = self.debit_peers(leased).await;
        if moved > 0 {
            self.credit(leased, moved).await?;
        }
        self.take_local(leased, want).await
    }
}
