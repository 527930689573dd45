//! Writes the sample events of `events/log-processor/` (for `sam local
//! invoke -e` and the tests), so they stay valid: real gzip + base64
//! CloudWatch Logs subscription payloads with lines in tollgate's formats.
//!
//! `cargo run -p log-processor --example gen-events [-- <dir>]`
//! (default dir: `events/log-processor` of the workspace).

use std::path::PathBuf;

use log_processor::sample::{
    access_line, control_json, direct_event, gzip, kinesis_event, payload_json, Event, Request,
};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/log-processor")
        });
    std::fs::create_dir_all(&dir)?;
    let t = 1_795_000_000_000i64; // 2026-11-18T11:06:40Z
    let req = |i: i64, identity: &'static str, status: u16, error_type: &'static str| Event {
        id: log_processor::sample::event_id(t + i, i as u64),
        timestamp: t + i + 35,
        message: access_line(&Request {
            request_id: &format!("9f1c2d3e-0000-4000-8000-{:012}", i),
            time_ms: t + i,
            ip: "203.0.113.7",
            identity,
            status,
            error_type,
        }),
    };
    // API Gateway access log lines: 3 counted for key:k_demo, 1 for an
    // anonymous IP, a 5xx and a denial that are not counted.
    let access = vec![
        req(0, "key:k_demo", 200, "-"),
        req(1, "key:k_demo", 200, "-"),
        req(2, "key:k_demo", 404, "-"),
        req(3, "ip:203.0.113.7", 200, "-"),
        req(4, "key:k_demo", 502, "-"),
        req(5, "key:k_blocked", 429, "ACCESS_DENIED"),
    ];
    let app_lines = [
        r#"{"tollgate":1,"requestId":"r-1","identity":"key:k_demo","meter":"tokens","value":1250,"time":"2026-11-18T11:06:40.100Z"}"#,
        "2026-11-18T11:06:41.000Z\tc0ffee00-1111-4222-8333-444455556666\tINFO\t{\"tollgate\":1,\"requestId\":\"r-2\",\"identity\":\"key:k_demo\",\"time\":1795000001000}",
        "START RequestId: c0ffee00-1111-4222-8333-444455556666 Version: $LATEST",
    ];
    let app: Vec<Event> = app_lines
        .iter()
        .enumerate()
        .map(|(i, m)| Event {
            id: log_processor::sample::event_id(t + 1000 + i as i64, 100 + i as u64),
            timestamp: t + 1000 + i as i64,
            message: (*m).to_owned(),
        })
        .collect();
    let access_json = payload_json(
        "API-Gateway-Access-Logs/tollgate-demo/prod",
        "a1b2c3d4e5f6",
        &access,
    );
    let app_json = payload_json(
        "/aws/lambda/provider-backend",
        "2026/11/18/[$LATEST]0123456789abcdef",
        &app,
    );
    let write = |name: &str, value: &serde_json::Value| -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(name), text + "\n")
    };
    write("direct-access-logs.json", &direct_event(&access_json))?;
    write("direct-app-lines.json", &direct_event(&app_json))?;
    write(
        "direct-control-message.json",
        &direct_event(&control_json()),
    )?;
    write(
        "kinesis.json",
        &kinesis_event(
            &[gzip(&access_json), gzip(&control_json()), gzip(&app_json)],
            49_590_338_271_490_256_608_559_692_538_361_571_095u128,
        ),
    )?;
    println!("wrote sample events to {}", dir.display());
    Ok(())
}
