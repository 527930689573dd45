//! Counting DynamoDB requests and the capacity they consume, for tests that
//! prove request counts and for the cost benchmarks.
//!
//! [`RequestCounter`] is an SDK interceptor. It counts every attempt by
//! operation and, when asked to, adds `ReturnConsumedCapacity: TOTAL` to each
//! request that accepts it and sums the capacity units in the responses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// Counts for one operation (`GetItem`, `TransactWriteItems`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpCount {
    pub requests: u64,
    /// Read capacity units consumed (when capacity is requested).
    pub read_units: f64,
    /// Write capacity units consumed (when capacity is requested).
    pub write_units: f64,
}

/// A shareable counter of DynamoDB requests, by operation.
///
/// It counts the attempts DynamoDB answered, retries included (each is a
/// request it serves and bills). An attempt that got no answer at all (a
/// pooled connection the server had closed, a connect timeout) never reached
/// it and is not counted.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, OpCount>>>,
    capacity: bool,
}

const CAPACITY_OPS: [&str; 10] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
];

impl RequestCounter {
    /// Counts requests only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts requests and asks DynamoDB for the capacity each consumes.
    pub fn with_capacity() -> Self {
        RequestCounter {
            capacity: true,
            ..Self::default()
        }
    }

    /// The counts so far, by operation.
    pub fn snapshot(&self) -> BTreeMap<String, OpCount> {
        self.counts.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Requests of one operation so far.
    pub fn requests(&self, operation: &str) -> u64 {
        self.snapshot().get(operation).map_or(0, |c| c.requests)
    }

    /// All requests so far.
    pub fn total_requests(&self) -> u64 {
        self.snapshot().values().map(|c| c.requests).sum()
    }

    /// (read units, write units) consumed so far.
    pub fn total_units(&self) -> (f64, f64) {
        self.snapshot().values().fold((0.0, 0.0), |(r, w), c| {
            (r + c.read_units, w + c.write_units)
        })
    }

    /// Forgets every count.
    pub fn reset(&self) {
        if let Ok(mut m) = self.counts.lock() {
            m.clear();
        }
    }

    fn record(&self, op: &str, f: impl FnOnce(&mut OpCount)) {
        if let Ok(mut m) = self.counts.lock() {
            f(m.entry(op.to_owned()).or_default());
        }
    }
}

/// The body of the request being counted (see `modify_before_signing`).
#[derive(Debug, Clone)]
struct SentRequest(Vec<u8>);

impl Storable for SentRequest {
    type Storer = StoreReplace<Self>;
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| m.name().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Sums `CapacityUnits` / `ReadCapacityUnits` / `WriteCapacityUnits` from a
/// response's `ConsumedCapacity` (an object or a list of them).
fn consumed(body: &[u8]) -> (f64, f64) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (0.0, 0.0);
    };
    let list = match v.get("ConsumedCapacity") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(obj @ serde_json::Value::Object(_)) => vec![obj.clone()],
        _ => return (0.0, 0.0),
    };
    list.iter().fold((0.0, 0.0), |(r, w), c| {
        let f = |k: &str| c.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        let (read, write) = (f("ReadCapacityUnits"), f("WriteCapacityUnits"));
        if read == 0.0 && write == 0.0 {
            // Only a total is given: a read-only operation's units are reads.
            (r, w + f("CapacityUnits"))
        } else {
            (r + read, w + write)
        }
    })
}

fn is_read_only(op: &str) -> bool {
    matches!(
        op,
        "GetItem" | "Query" | "Scan" | "BatchGetItem" | "TransactGetItems"
    )
}

/// The (read, write) capacity units of one call of operation `op`, from its
/// request and response bodies.
///
/// Mostly what the response reports in `ConsumedCapacity`. The exception is
/// `TransactWriteItems`: DynamoDB Local reports 2 units for a transaction
/// whatever its size, while DynamoDB charges 2 write units per 1 KB of each
/// item in it. Tollgate's items are under 1 KB, so a transaction is counted
/// as 2 units per action, as DynamoDB bills it.
pub fn units(op: &str, request: &[u8], response: &[u8]) -> (f64, f64) {
    if op == "TransactWriteItems" {
        let actions = serde_json::from_slice::<serde_json::Value>(request)
            .ok()
            .and_then(|v| {
                v.get("TransactItems")
                    .and_then(|t| t.as_array())
                    .map(Vec::len)
            })
            .unwrap_or(0);
        return (0.0, 2.0 * actions as f64);
    }
    let (read, write) = consumed(response);
    if is_read_only(op) {
        (read + write, 0.0)
    } else {
        (read, write)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "tollgate::RequestCounter"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        if !self.capacity || !CAPACITY_OPS.contains(&op.as_str()) {
            return Ok(());
        }
        let request = context.request_mut();
        let Some(bytes) = request.body().bytes() else {
            return Ok(());
        };
        // The request body is gone after sending: keep what the count needs.
        cfg.interceptor_state()
            .store_put(SentRequest(bytes.to_vec()));
        let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(bytes) else {
            return Ok(());
        };
        body.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
        let new = serde_json::to_vec(&body)?;
        request
            .headers_mut()
            .insert("content-length", new.len().to_string());
        *request.body_mut() = SdkBody::from(new);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(response) = context.response() else {
            return Ok(());
        };
        let op = operation(cfg);
        let request = cfg
            .load::<SentRequest>()
            .map(|r| r.0.as_slice())
            .unwrap_or_default();
        let (read, write) = response
            .body()
            .bytes()
            .map(|body| units(&op, request, body))
            .unwrap_or((0.0, 0.0));
        self.record(&op, |c| {
            c.requests += 1;
            c.read_units += read;
            c.write_units += write;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_consumed_capacity() {
        assert_eq!(
            consumed(br#"{"ConsumedCapacity":{"TableName":"t","CapacityUnits":2.0}}"#),
            (0.0, 2.0)
        );
        assert_eq!(
            consumed(br#"{"ConsumedCapacity":[{"CapacityUnits":4.0},{"ReadCapacityUnits":1.0,"WriteCapacityUnits":0.0,"CapacityUnits":1.0}]}"#),
            (1.0, 4.0)
        );
        assert_eq!(consumed(b"{}"), (0.0, 0.0));
        assert_eq!(consumed(b"not json"), (0.0, 0.0));
    }

    #[test]
    fn transactions_are_counted_as_dynamodb_bills_them() {
        let request = br#"{"TransactItems":[{"Put":{}},{"Update":{}},{"ConditionCheck":{}}]}"#;
        let reported = br#"{"ConsumedCapacity":[{"TableName":"t","CapacityUnits":2.0}]}"#;
        assert_eq!(units("TransactWriteItems", request, reported), (0.0, 6.0));
        assert_eq!(units("GetItem", b"{}", reported), (2.0, 0.0));
        assert_eq!(units("PutItem", b"{}", reported), (0.0, 2.0));
    }
}
