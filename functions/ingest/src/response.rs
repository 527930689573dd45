//! A response as data ([`ApiResponse`]): what a route returns, what an
//! `Idempotency-Key` replay returns again, and what the metrics read.

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A response as data: what is returned, and what an `Idempotency-Key`
/// replay returns again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl ApiResponse {
    /// A JSON error body `{"error": {"code", "message"}}`.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiResponse {
            status,
            body: json!({"error": {"code": code, "message": message.into()}}),
        }
    }

    /// The HTTP response. A 204 has no body: its body's `accepted` and
    /// `duplicates` counts become the `Tollgate-Accepted` and
    /// `Tollgate-Duplicates` headers.
    pub fn into_http(self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::NO_CONTENT {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = status;
            for (name, field) in [
                ("tollgate-accepted", "accepted"),
                ("tollgate-duplicates", "duplicates"),
            ] {
                let count = self.body[field].as_u64().unwrap_or(0);
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from(count));
            }
            return response;
        }
        let mut response = Response::new(Body::Text(self.body.to_string()));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        response
    }
}
