//! The events the simulated API Gateway and backend send to tollgate's
//! functions, in the shapes Lambda delivers them.

use serde_json::{json, Value};

/// The REST API id and stage the simulation pretends to be.
const API: &str = "tg0demo0api";

/// A REST API REQUEST authorizer event for `GET /v1/lookup` in `region`,
/// with an `x-api-key` header when `key` is given, from `ip`.
pub fn authorizer_request(
    region: &str,
    request_id: &str,
    at_ms: i64,
    key: Option<&str>,
    ip: &str,
) -> Value {
    let mut headers = json!({ "Accept": "application/json", "User-Agent": "tollgate-sim" });
    if let Some(key) = key {
        headers["x-api-key"] = json!(key);
    }
    json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:{region}:123456789012:{API}/prod/GET/v1/lookup"),
        "resource": "/v1/lookup",
        "path": "/v1/lookup",
        "httpMethod": "GET",
        "headers": headers,
        "queryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {
            "resourcePath": "/v1/lookup",
            "httpMethod": "GET",
            "path": "/prod/v1/lookup",
            "accountId": "123456789012",
            "stage": "prod",
            "requestId": request_id,
            "requestTimeEpoch": at_ms,
            "identity": { "sourceIp": ip, "userAgent": "tollgate-sim" },
            "apiId": API
        }
    })
}

/// An HTTP API (payload 2.0) request to the ingest function.
pub fn ingest_request(
    method: &str,
    path: &str,
    query: &str,
    body: Option<String>,
    region: &str,
) -> Value {
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": { "content-type": "application/json", "host": "ingest.local" },
        "queryStringParameters": query_map(query),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "tg0ingest",
            "domainName": "ingest.local",
            "domainPrefix": "ingest",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": "tollgate-sim" },
            "requestId": format!("ingest-{region}-{}", body.as_ref().map_or(0, String::len)),
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_000_000_000i64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

fn query_map(query: &str) -> Value {
    let map: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    Value::Object(map)
}

/// Whether an authorizer response allows the request, and its context.
pub fn authorizer_allowed(response: &Value) -> (bool, Value) {
    let effect = response["policyDocument"]["Statement"][0]["Effect"].as_str();
    (effect == Some("Allow"), response["context"].clone())
}
