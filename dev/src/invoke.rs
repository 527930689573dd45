//! The Lambda invoke client: invokes a function through the Lambda invoke
//! API that `cargo lambda watch` serves
//! (`POST /2015-03-31/functions/<name>/invocations`), for the demo and the
//! stream pump when the functions run as their own processes.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_testkit::pump::{Invoke, InvokeError};

/// A function URL that is not `http://<host>:<port>`.
#[derive(Debug, thiserror::Error)]
#[error("bad function URL {0:?}: expected http://<host>:<port>")]
pub struct BadUrl(String);

/// Invokes one function through the Lambda invoke API, with a small
/// HTTP/1.1 client (one connection per invocation).
#[derive(Debug, Clone)]
pub struct InvokeClient {
    url: String,
    host: String,
    port: u16,
    path: String,
    timeout: Duration,
}

impl InvokeClient {
    /// An invoker of `function` at `base_url` (`http://127.0.0.1:9000`).
    pub fn new(base_url: &str, function: &str, timeout: Duration) -> Result<Self, BadUrl> {
        let bad = || BadUrl(base_url.to_owned());
        let rest = base_url.strip_prefix("http://").ok_or_else(bad)?;
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(InvokeClient {
            url: base_url.trim_end_matches('/').to_owned(),
            host: host.to_owned(),
            port,
            path: format!("/2015-03-31/functions/{function}/invocations"),
            timeout,
        })
    }

    async fn post(&self, body: &[u8]) -> Result<(u16, bool, Vec<u8>), String> {
        let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(body).await.map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        parse_http_response(&response)
    }
}

/// Parses an HTTP/1.1 response read to its end: (status, whether
/// `X-Amz-Function-Error` is set, body, de-chunked if need be).
fn parse_http_response(raw: &[u8]) -> Result<(u16, bool, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("no status line in the response")?;
    let mut function_error = false;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name == "x-amz-function-error" {
            function_error = true;
        }
        if name == "transfer-encoding" && value.trim().eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    if chunked {
        body = dechunk(&body)?;
    }
    Ok((status, function_error, body))
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk without a size line")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size {
            return Err("a chunk shorter than its size".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or(&[]);
    }
}

impl Invoke for InvokeClient {
    fn invoke(&self, event: Value) -> BoxFuture<'_, Result<Value, InvokeError>> {
        Box::pin(async move {
            let transport = |message: String| InvokeError::Transport {
                url: self.url.clone(),
                message,
            };
            let body = serde_json::to_vec(&event).map_err(|e| transport(e.to_string()))?;
            let (status, function_error, body) =
                tokio::time::timeout(self.timeout, self.post(&body))
                    .await
                    .map_err(|_| transport(format!("no response within {:?}", self.timeout)))?
                    .map_err(transport)?;
            let text = String::from_utf8_lossy(&body).into_owned();
            if function_error || !(200..300).contains(&status) {
                return Err(InvokeError::Function(format!("HTTP {status}: {text}")));
            }
            serde_json::from_slice(&body)
                .map_err(|e| InvokeError::Function(format!("not a JSON response ({e}): {text}")))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(
            parse_http_response(plain).unwrap(),
            (200, false, b"{}".to_vec())
        );
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nX-Amz-Function-Error: Unhandled\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_response(chunked).unwrap(),
            (200, true, b"{\"a\":1}".to_vec())
        );
        assert!(parse_http_response(b"garbage").is_err());
    }

    #[test]
    fn parses_function_urls() {
        let api = InvokeClient::new(
            "http://127.0.0.1:9000",
            "quota-sync",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!((api.host.as_str(), api.port), ("127.0.0.1", 9000));
        assert_eq!(api.path, "/2015-03-31/functions/quota-sync/invocations");
        for bad in [
            "https://x:1",
            "127.0.0.1:9000",
            "http://:9000",
            "http://h:port",
        ] {
            assert!(
                InvokeClient::new(bad, "f", Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }
}
