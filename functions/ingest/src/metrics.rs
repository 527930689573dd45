//! ingest's CloudWatch metrics (EMF, namespace
//! [`tollgate_lambda::metrics::NAMESPACE`], dimension `FunctionName`): one
//! line per request, from the response it gets.

use serde_json::Value;
use tollgate_lambda::metrics::{self, count, Line, Metric};

use crate::response::ApiResponse;

/// Events counted now.
pub const EVENTS_ACCEPTED: &str = "EventsAccepted";
/// Events counted before (same id, or CloudEvents source and id).
pub const EVENTS_DUPLICATE: &str = "EventsDuplicate";
/// Events refused (a 207's rejected events, a CloudEvents 400's bad events).
pub const EVENTS_REJECTED: &str = "EventsRejected";
/// Requests answered 4xx (bad body, header, route, Idempotency-Key...).
pub const REQUESTS_REFUSED: &str = "RequestsRefused";
/// Requests answered 5xx (the store failed: the client retries).
pub const REQUESTS_FAILED: &str = "RequestsFailed";

/// Every metric name ingest prints.
pub const NAMES: &[&str] = &[
    EVENTS_ACCEPTED,
    EVENTS_DUPLICATE,
    EVENTS_REJECTED,
    REQUESTS_REFUSED,
    REQUESTS_FAILED,
];

/// The values of one request, in [`NAMES`]' order.
pub fn values(r: &ApiResponse) -> [Metric<'static>; 5] {
    let n = |field: &str| r.body.get(field).and_then(Value::as_u64).unwrap_or(0);
    let refused_events = r
        .body
        .get("error")
        .and_then(|e| e.get("events"))
        .and_then(Value::as_array)
        .map_or(0, |a| a.len() as u64);
    [
        count(EVENTS_ACCEPTED, n("accepted")),
        count(EVENTS_DUPLICATE, n("duplicates")),
        count(EVENTS_REJECTED, n("rejected") + refused_events),
        count(REQUESTS_REFUSED, u64::from((400..500).contains(&r.status))),
        count(REQUESTS_FAILED, u64::from(r.status >= 500)),
    ]
}

/// Prints the metric line of one request.
pub fn emit(response: &ApiResponse) {
    metrics::emit(&Line::function_only(&values(response)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn line(r: &ApiResponse) -> (Value, Vec<String>) {
        tollgate_lambda::metrics::read_back_function_only(
            &Line::function_only(&values(r)).render("ingest", 1),
        )
    }

    #[test]
    fn a_response_is_one_emf_line() {
        let (v, names) = line(&ApiResponse {
            status: 207,
            body: json!({"accepted": 3, "duplicates": 1, "rejected": 2, "results": []}),
        });
        assert_eq!(names, NAMES);
        assert_eq!(v[EVENTS_ACCEPTED], 3);
        assert_eq!(v[EVENTS_DUPLICATE], 1);
        assert_eq!(v[EVENTS_REJECTED], 2);
        assert_eq!(v[REQUESTS_REFUSED], 0);
        assert_eq!(v[REQUESTS_FAILED], 0);
    }

    #[test]
    fn refusals_and_failures_are_counted() {
        let (v, _) = line(&ApiResponse {
            status: 400,
            body: json!({"error": {"code": "bad", "message": "m", "events": [{}, {}]}}),
        });
        assert_eq!(v[EVENTS_REJECTED], 2);
        assert_eq!(v[REQUESTS_REFUSED], 1);
        let (v, _) = line(&ApiResponse::error(503, "unavailable", "m"));
        assert_eq!(v[REQUESTS_FAILED], 1);
        assert_eq!(v[EVENTS_ACCEPTED], 0);
    }
}
