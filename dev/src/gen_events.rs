//! `tollgate-dev gen-events`: writes the sample events of
//! `events/log-processor/` (for `sam local invoke -e` and the tests), so
//! they stay valid: real gzip + base64 CloudWatch Logs subscription payloads
//! with lines in tollgate's formats.

use std::path::PathBuf;

use anyhow::{Context, Result};
use log_processor::ACCESS_LOG_FORMAT;
use tollgate_testkit::cloudwatch::{
    control_json, direct_event, event_id, gzip, kinesis_event, payload_json, Event,
};
use tollgate_testkit::traffic::{access_line, Request};

/// Options of `tollgate-dev gen-events`.
#[derive(Debug, clap::Args)]
pub struct GenEventsArgs {
    /// The folder to write to (default: `events/log-processor` of the workspace).
    dir: Option<PathBuf>,
}

/// Writes the sample events.
pub fn run(args: &GenEventsArgs) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/log-processor")
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let t = 1_795_000_000_000i64; // 2026-11-18T11:06:40Z
    let req = |i: i64, identity: &'static str, status: u16, error_type: &'static str| Event {
        id: event_id(t + i, i as u64),
        timestamp: t + i + 35,
        message: access_line(
            ACCESS_LOG_FORMAT,
            &Request {
                request_id: &format!("9f1c2d3e-0000-4000-8000-{:012}", i),
                time_ms: t + i,
                ip: "203.0.113.7",
                identity,
                status,
                error_type,
            },
        ),
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
            id: event_id(t + 1000 + i as i64, 100 + i as u64),
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
    let write = |name: &str, value: &serde_json::Value| -> Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        let path = dir.join(name);
        std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))
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
