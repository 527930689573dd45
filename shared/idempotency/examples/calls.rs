//! Times N idempotent calls (first executions, then the same N again as
//! duplicates), one after another, against the DynamoDB endpoint in
//! `AWS_ENDPOINT_URL_DYNAMODB`, and measures the CPU time this process
//! spends on them. `scripts/bench-idempotency-vs-powertools.py` runs it
//! beside Powertools for AWS Lambda (Python).
//!
//! `cargo run -p tollgate-idempotency --example calls -- <table> <n>`
//! prints one JSON line:
//! `{"n":..,"first_s":..,"duplicate_s":..,"first_cpu_s":..,"duplicate_cpu_s":..,..}`.
//!
//! The CPU times are user + system time of the whole process (every thread,
//! the runtime's workers included, and threads that ended), read right
//! before and right after each loop, so that process start, the runtime,
//! the SDK client's construction and building the events are not counted:
//! the total from `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` (nanoseconds; the
//! sum that `getrusage` splits into user and system), the split from
//! `/proc/self/stat` (in clock ticks, 10 ms).

use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use serde_json::json;
use tollgate_idempotency::{Deadline, Idempotency, IdempotencyConfig};

/// User and system CPU time of this process so far, in clock ticks
/// (`utime` and `stime` of `/proc/self/stat`).
fn proc_ticks() -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name, in parentheses, may hold spaces: count from after it.
    let rest = stat.rsplit_once(')').ok_or("no ) in /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let tick = |i: usize| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(fields.get(i - 3).ok_or("short /proc/self/stat")?.parse()?)
    };
    Ok((tick(14)?, tick(15)?))
}

/// What one loop cost this process.
struct Cpu {
    total_s: f64,
    user_ticks: u64,
    system_ticks: u64,
}

/// Runs `f` and measures the CPU time the whole process spends meanwhile.
async fn measured<F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>>(
    f: F,
) -> Result<(f64, Cpu), Box<dyn std::error::Error>> {
    let ticks_before = proc_ticks()?;
    let cpu_before = ProcessTime::try_now()?;
    let started = Instant::now();
    f.await?;
    let wall = started.elapsed().as_secs_f64();
    let total_s = ProcessTime::try_now()?
        .duration_since(cpu_before)
        .as_secs_f64();
    let ticks_after = proc_ticks()?;
    Ok((
        wall,
        Cpu {
            total_s,
            user_ticks: ticks_after.0 - ticks_before.0,
            system_ticks: ticks_after.1 - ticks_before.1,
        },
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let table = args.next().ok_or("usage: calls <table> <n>")?;
    let n: usize = args.next().ok_or("usage: calls <table> <n>")?.parse()?;
    let aws = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let idem = Idempotency::new(
        client,
        IdempotencyConfig::new(table)
            .namespace("calls")
            .key_path("order_id")?,
    );
    let run_id = format!("{:08x}", rand::random::<u32>());
    let events: Vec<_> = (0..n)
        .map(|i| json!({"order_id": format!("{run_id}-{i}"), "amount": i, "note": "x".repeat(200)}))
        .collect();
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..2 {
        let (w, c) = measured(async {
            for event in &events {
                let deadline =
                    Deadline::from(std::time::SystemTime::now() + Duration::from_secs(30));
                let out = idem
                    .run(event, deadline, || async {
                        Ok::<_, std::io::Error>(json!({"status": "ok", "order": event["order_id"]}))
                    })
                    .await?;
                if out["order"] != event["order_id"] {
                    return Err("a call returned another order's response".into());
                }
            }
            Ok(())
        })
        .await?;
        wall.push(w);
        cpu.push(c);
    }
    println!(
        "{}",
        json!({
            "n": n,
            "first_s": wall[0],
            "duplicate_s": wall[1],
            "first_cpu_s": cpu[0].total_s,
            "duplicate_cpu_s": cpu[1].total_s,
            "first_user_ticks": cpu[0].user_ticks,
            "first_system_ticks": cpu[0].system_ticks,
            "duplicate_user_ticks": cpu[1].user_ticks,
            "duplicate_system_ticks": cpu[1].system_ticks,
        })
    );
    Ok(())
}
