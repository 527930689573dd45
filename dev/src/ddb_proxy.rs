//! A counting proxy in front of DynamoDB Local, for runs where the functions
//! are separate processes (`cargo lambda watch`): every request is counted
//! by region and operation, and asked to return its consumed capacity, so
//! the demo can say what DynamoDB would have billed.
//!
//! Loopback only; HTTP/1.1 with `Content-Length` bodies, as the AWS SDK and
//! DynamoDB Local speak it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Requests and capacity units of one (region, operation).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub requests: u64,
    pub read_units: f64,
    pub write_units: f64,
}

/// Counts by (region, operation).
pub type Counts = Arc<Mutex<BTreeMap<(String, String), Usage>>>;

/// Starts the proxy on loopback port `port` (0: a free one); returns its URL and the counts.
pub async fn start_on(upstream: &str, port: u16) -> Result<(String, Counts)> {
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .context("binding the proxy")?;
    let url = format!("http://{}", listener.local_addr()?);
    let counts: Counts = Arc::default();
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, counts) = (upstream.clone(), shared.clone());
            tokio::spawn(async move {
                let _ = relay(client, &upstream, &counts).await;
            });
        }
    });
    Ok((url, counts))
}

struct Message {
    head: Vec<(String, String)>,
    first_line: String,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.first_line).into_bytes();
        for (k, v) in &self.head {
            if k.eq_ignore_ascii_case("content-length") {
                continue;
            }
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

async fn read_message<R: tokio::io::AsyncRead + Unpin>(
    r: &mut BufReader<R>,
) -> Result<Option<Message>> {
    let mut first_line = String::new();
    if r.read_line(&mut first_line).await? == 0 {
        return Ok(None);
    }
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            head.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut msg = Message {
        head,
        first_line: first_line.trim_end().to_owned(),
        body: Vec::new(),
    };
    let length: usize = msg
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    msg.body.resize(length, 0);
    r.read_exact(&mut msg.body).await?;
    Ok(Some(msg))
}

/// One upstream connection; DynamoDB Local closes idle ones.
struct Upstream {
    read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Upstream {
    async fn connect(addr: &str) -> Result<Upstream> {
        let (read, write) = TcpStream::connect(addr).await?.into_split();
        Ok(Upstream {
            read: BufReader::new(read),
            write,
        })
    }

    /// Sends `bytes` and reads the response (`None`: the connection was closed).
    async fn exchange(&mut self, bytes: &[u8]) -> Result<Option<Message>> {
        self.write.write_all(bytes).await?;
        read_message(&mut self.read).await
    }
}

async fn relay(client: TcpStream, upstream: &str, counts: &Counts) -> Result<()> {
    let (client_read, mut client_write) = client.into_split();
    let mut client_read = BufReader::new(client_read);
    let mut server = Upstream::connect(upstream).await?;
    while let Some(mut request) = read_message(&mut client_read).await? {
        let op = request
            .header("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned();
        // The signing region: `Credential=<key>/<date>/<region>/dynamodb/aws4_request`.
        let region = request
            .header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(2))
            .unwrap_or("unknown")
            .to_owned();
        if let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(&request.body) {
            if op != "DescribeTable"
                && op != "CreateTable"
                && !op.contains("Stream")
                && !op.contains("TimeToLive")
            {
                body.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
                request.body = serde_json::to_vec(&body)?;
            }
        }
        let bytes = request.to_bytes();
        // An upstream connection idle for a while may have been closed by
        // DynamoDB Local: then the request never reached it, and is sent
        // once more on a new connection (the client's connection stays up).
        let response = match server.exchange(&bytes).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => {
                server = Upstream::connect(upstream).await?;
                match server.exchange(&bytes).await? {
                    Some(r) => r,
                    None => break,
                }
            }
        };
        let (read, write) = tollgate_store::metrics::units(&op, &request.body, &response.body);
        if let Ok(mut m) = counts.lock() {
            let u = m.entry((region, op)).or_default();
            u.requests += 1;
            u.read_units += read;
            u.write_units += write;
        }
        client_write.write_all(&response.to_bytes()).await?;
    }
    Ok(())
}
