//! A `POST /v1/events` request as data: the body and the headers that
//! choose its mode (`Content-Type`, `ce-*`, `Prefer`).

use lambda_http::{Body, Request};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cloudevents;

/// A `POST /v1/events` request: its body and the headers that choose how
/// it is read ([`crate::body::Mode`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsRequest<'a> {
    /// The body.
    pub body: &'a [u8],
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The CloudEvents attributes of `ce-*` headers (binary mode).
    pub ce_attributes: serde_json::Map<String, Value>,
    /// `Prefer: return=representation`: a CloudEvents request is answered
    /// 200 with each event's result instead of 204.
    pub representation: bool,
}

impl<'a> EventsRequest<'a> {
    /// A body without headers (tollgate's format, or CloudEvents as plain JSON).
    pub fn json(body: &'a [u8]) -> Self {
        EventsRequest {
            body,
            ..Default::default()
        }
    }

    /// The request's fingerprint for `Idempotency-Key`: the body's SHA-256,
    /// with the mode-choosing headers ahead of it when there are any.
    pub fn fingerprint(&self) -> String {
        let media = crate::body::media_type(self.content_type.as_deref());
        let plain = !media.starts_with("application/cloudevents")
            && self.ce_attributes.is_empty()
            && !self.representation;
        let mut hash = Sha256::new();
        if !plain {
            let head = json!([media, self.ce_attributes, self.representation]);
            hash.update(head.to_string().as_bytes());
            hash.update(b"\n");
        }
        hash.update(self.body);
        hex::encode(hash.finalize())
    }

    /// The request's parts, or the name of a `ce-*` header that is not
    /// valid percent-encoded UTF-8.
    pub fn from_http(req: &'a Request) -> Result<Self, String> {
        let body: &[u8] = match req.body() {
            Body::Empty => &[],
            Body::Text(t) => t.as_bytes(),
            Body::Binary(b) => b,
            _ => &[],
        };
        let headers = req.headers();
        let ce_attributes = cloudevents::attributes_from_headers(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())),
        )?;
        let representation = headers.get_all("prefer").iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("return=representation"))
            })
        });
        Ok(EventsRequest {
            body,
            content_type: headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            ce_attributes,
            representation,
        })
    }
}
