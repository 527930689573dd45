//! `tollgate replay` end to end: the real CLI binary against SQS and Kinesis
//! from the moto server (`scripts/moto.sh`, which `make test` starts), a
//! Lambda Invoke API stand-in that runs the log-processor's handler, and
//! DynamoDB Local. A failed delivery replayed twice counts once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::Client;
use log_processor::{Config, Processor};
use serde_json::{json, Value};
use tollgate_store::usage::UsageItem;
use tollgate_store::CommitStore;
use tollgate_tests::{unique_prefix, Harness, TEST_REGION};

/// moto keeps its resources per region; the stream ARN names it.
const MOTO_REGION: &str = "us-east-1";

fn moto_endpoint() -> String {
    std::env::var("TOLLGATE_MOTO_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TOLLGATE_MOTO_ENDPOINT is not set: start the stand-in with \
             `scripts/moto.sh start` and export TOLLGATE_MOTO_ENDPOINT=<the endpoint it prints>, \
             or run everything with `make test`"
        )
    })
}

async fn moto_sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(MOTO_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .load()
        .await
}

/// One access line per request id, as API Gateway renders the stage's
/// format (every variable this test does not set is `-`).
fn access_line(request_id: &str, time_ms: i64, identity: &str) -> String {
    let mut line = log_processor::ACCESS_LOG_FORMAT.to_owned();
    for (var, value) in [
        ("$context.requestId", request_id.to_owned()),
        ("$context.requestTimeEpoch", time_ms.to_string()),
        ("$context.identity.sourceIp", "203.0.113.9".to_owned()),
        ("$context.httpMethod", "GET".to_owned()),
        ("$context.resourcePath", "/v1/things".to_owned()),
        ("$context.status", "200".to_owned()),
        ("$context.integrationStatus", "200".to_owned()),
        ("$context.authorizer.identity", identity.to_owned()),
    ] {
        line = line.replace(var, &value);
    }
    while let Some(i) = line.find("$context.") {
        let end = line[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .map_or(line.len(), |e| i + 1 + e);
        line.replace_range(i..end, "-");
    }
    line
}

/// A gzipped CloudWatch Logs `DATA_MESSAGE` with `n` lines of `identity`.
fn payload(tag: &str, n: usize, identity: &str) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_millis();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": format!("{:020}{:020}{:016}", now, i, tag.len() * 1000 + i),
                "timestamp": now,
                "message": access_line(&format!("{tag}-{i}"), now, identity),
            })
        })
        .collect();
    let json = serde_json::to_vec(&json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/tollgate/prod/access",
        "logStream": tag,
        "subscriptionFilters": ["tollgate"],
        "logEvents": events,
    }))
    .unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&json).unwrap();
    enc.finish().unwrap()
}

/// The Lambda Invoke API (`POST /2015-03-31/functions/<f>/invocations`)
/// in front of the log-processor's handler; while `down`, the handler's
/// DynamoDB is unreachable, so every invoke fails as in an outage.
struct InvokeStandIn {
    endpoint: String,
    down: Arc<AtomicBool>,
    invokes: Arc<AtomicUsize>,
}

fn start_invoke_stand_in(up: Processor, down_processor: Processor) -> InvokeStandIn {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let down = Arc::new(AtomicBool::new(true));
    let invokes = Arc::new(AtomicUsize::new(0));
    let (d, n) = (down.clone(), invokes.clone());
    let processors = Arc::new((up, down_processor));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for stream in listener.incoming().flatten() {
            let _ = serve(stream, &rt, &processors, &d, &n);
        }
    });
    InvokeStandIn {
        endpoint,
        down,
        invokes,
    }
}

fn serve(
    stream: TcpStream,
    rt: &tokio::runtime::Runtime,
    processors: &(Processor, Processor),
    down: &AtomicBool,
    invokes: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let invoke = request_line.starts_with("POST /2015-03-31/functions/")
        && request_line.contains("/invocations");
    let (status, error, answer) = if !invoke {
        (404, None, json!({"message": "not the Invoke API"}))
    } else {
        invokes.fetch_add(1, Ordering::SeqCst);
        let processor = if down.load(Ordering::SeqCst) {
            &processors.1
        } else {
            &processors.0
        };
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match rt.block_on(processor.handle(event)) {
            Ok(v) => (200, None, v),
            Err(e) => (
                200,
                Some("Unhandled"),
                json!({"errorType": "ProcessError", "errorMessage": e.to_string()}),
            ),
        }
    };
    let answer = serde_json::to_vec(&answer).unwrap();
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        answer.len(),
        error.map(|e| format!("X-Amz-Function-Error: {e}\r\n")).unwrap_or_default(),
    )?;
    out.write_all(&answer)?;
    out.flush()
}

/// A processor on `client`'s stores, as its `main.rs` builds them.
fn processor(client: Client, config: Config) -> Processor {
    let markers = Processor::marker_config(&config);
    let keys = tollgate_store::KeysStore::new(client.clone(), config.keys_table.clone());
    let commits = CommitStore::on(client, &config.usage_table, config.top_index, markers);
    Processor::new(commits, keys, config)
}

fn config(h: &Harness) -> Config {
    let vars: BTreeMap<&str, &str> = [
        ("TOLLGATE_REGION", TEST_REGION),
        ("TOLLGATE_USAGE_TABLE", h.tables.usage.as_str()),
        ("TOLLGATE_IDEMPOTENCY_TABLE", h.tables.idempotency.as_str()),
        ("TOLLGATE_KINESIS_DEDUPE", "watermark"),
    ]
    .into_iter()
    .collect();
    Config::from_lookup(|k| vars.get(k).map(|v| v.to_string())).unwrap()
}

/// Every day counter of the Usage table, by counter name.
async fn day_counts(client: &Client, table: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let items = client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    for item in items.items() {
        for c in UsageItem::parse_all(item).unwrap() {
            if c.key.label().starts_with("day#") {
                *out.entry(c.key.counter.name()).or_insert(0) += c.value;
            }
        }
    }
    out
}

fn replay(queue_url: &str, moto: &str, lambda: &str) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["replay", "--json", "--queue-url", queue_url])
        .env("AWS_REGION", MOTO_REGION)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_ENDPOINT_URL_SQS", moto)
        .env("AWS_ENDPOINT_URL_KINESIS", moto)
        .env("AWS_ENDPOINT_URL_LAMBDA", lambda)
        .env_remove("TOLLGATE_STAGE")
        .env_remove("TOLLGATE_STACK")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_replayed_twice_counts_once() {
    let moto = moto_endpoint();
    let sdk = moto_sdk(&moto).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let h = Harness::new("replay").await;
    let name = unique_prefix("dlq");

    // The stream, with the two records of a Kinesis batch that failed for good.
    kinesis
        .create_stream()
        .stream_name(&name)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let stream_arn = summary
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_owned();
    let mut seqs = Vec::new();
    for (tag, n) in [("kin-a", 3), ("kin-b", 4)] {
        let put = kinesis
            .put_record()
            .stream_name(&name)
            .partition_key("p")
            .data(aws_sdk_kinesis::primitives::Blob::new(payload(
                tag,
                n,
                "key:k_kinesis",
            )))
            .send()
            .await
            .unwrap();
        seqs.push((put.shard_id().to_owned(), put.sequence_number().to_owned()));
    }
    // A record after the range: replay must not count it.
    kinesis
        .put_record()
        .stream_name(&name)
        .partition_key("p")
        .data(aws_sdk_kinesis::primitives::Blob::new(payload(
            "kin-c",
            5,
            "key:k_kinesis",
        )))
        .send()
        .await
        .unwrap();

    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let function = "arn:aws:lambda:us-east-1:123456789012:function:tollgate-log-processor";
    let direct = json!({
        "version": "1.0", "timestamp": "2026-12-01T18:16:05.568Z",
        "requestContext": {"requestId": "a1", "functionArn": format!("{function}:$LATEST"),
            "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {"awslogs": {"data": base64_of(&payload("direct", 6, "key:k_direct"))}},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "writing usage failed"}
    });
    let from_stream = json!({
        "requestContext": {"requestId": "k1", "functionArn": function,
            "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2026-12-01T18:17:00.000Z",
        "KinesisBatchInfo": {"shardId": seqs[0].0, "startSequenceNumber": seqs[0].1,
            "endSequenceNumber": seqs[1].1, "batchSize": 2, "streamArn": stream_arn}
    });
    let dead_letter = |body: &Value| {
        let (sqs, url, body) = (sqs.clone(), queue_url.clone(), body.to_string());
        async move {
            sqs.send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
    };
    dead_letter(&direct).await;
    dead_letter(&from_stream).await;

    let up = processor(h.client(), config(&h));
    let unreachable = tollgate_store::local_client("http://127.0.0.1:9", TEST_REGION);
    let down = processor(unreachable, config(&h));
    let lambda = start_invoke_stand_in(up, down);

    // 1. DynamoDB is still down: nothing is replayed, both stay queued.
    let (ok, report) = replay(&queue_url, &moto, &lambda.endpoint);
    assert!(!ok, "a failed replay exits with an error: {report}");
    assert_eq!(report["failed"], 2, "{report}");
    assert_eq!(report["replayed"], 0, "{report}");
    assert!(day_counts(&h.client(), &h.tables.usage).await.is_empty());

    // 2. It is back: both are replayed, counted, and deleted.
    lambda.down.store(false, Ordering::SeqCst);
    let (ok, report) = replay(&queue_url, &moto, &lambda.endpoint);
    assert!(ok, "{report}");
    assert_eq!(report["replayed"], 2, "{report}");
    let kinds: Vec<&str> = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"invoke") && kinds.contains(&"kinesis"),
        "{report}"
    );
    let kinesis_outcome = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "kinesis")
        .unwrap();
    assert_eq!(
        kinesis_outcome["records"], 2,
        "the range, not the record after it"
    );
    let want = BTreeMap::from([
        ("requests#key:k_direct".to_owned(), 6),
        ("requests#key:k_kinesis".to_owned(), 7),
    ]);
    assert_eq!(day_counts(&h.client(), &h.tables.usage).await, want);
    let (_, empty) = replay(&queue_url, &moto, &lambda.endpoint);
    assert_eq!(
        empty["messages"].as_array().unwrap().len(),
        0,
        "deleted: {empty}"
    );

    // 3. The same deliveries dead-lettered again and replayed again: counted once.
    dead_letter(&direct).await;
    dead_letter(&from_stream).await;
    let before = lambda.invokes.load(Ordering::SeqCst);
    let (ok, report) = replay(&queue_url, &moto, &lambda.endpoint);
    assert!(ok, "{report}");
    assert_eq!(report["replayed"], 2, "{report}");
    assert_eq!(lambda.invokes.load(Ordering::SeqCst), before + 2);
    assert_eq!(day_counts(&h.client(), &h.tables.usage).await, want);

    // 4. A record replay cannot act on stays in the queue, reported.
    dead_letter(&json!({"requestContext": {"functionArn": function}, "DDBStreamBatchInfo": {}}))
        .await;
    let (ok, report) = replay(&queue_url, &moto, &lambda.endpoint);
    assert!(ok, "{report}");
    assert_eq!(report["skipped"], 1, "{report}");
    assert_eq!(report["messages"][0]["kind"], "unsupported");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
