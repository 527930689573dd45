//! The benchmark's cache-hit path as a plain loop, for instruction counts
//! that do not depend on how busy the machine is:
//!
//! ```sh
//! cargo build --profile bench -p authorizer --example hit_loop
//! valgrind --tool=callgrind target/release/examples/hit_loop 0      # set-up only
//! valgrind --tool=callgrind target/release/examples/hit_loop 10000  # set-up + 10,000 per event kind
//! ```
//!
//! (difference / 10,000 = instructions per decision). Without valgrind it
//! prints the mean wall-clock time per decision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authorizer::{Authorizer, Config, Found, SystemClock};
use tokio::runtime::Builder;
use tollgate_core::{ApiKey, KeyRecord, KeyStatus, Limit, MeterName, Plan, Window};
use tollgate_store::KeysStore;

const DEMO_KEY: &str = "tg_live_000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn plan(name: &str) -> Plan {
    Plan {
        name: name.into(),
        limits: vec![Limit {
            meter: MeterName::requests(),
            window: Window::Day,
            limit: 1500,
        }],
        overage: Default::default(),
        failure: Default::default(),
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = KeysStore::new(
        tollgate_store::local_client("http://127.0.0.1:9", "local-a"),
        "bench",
    );
    let config = Config {
        cache_ttl: Duration::from_secs(24 * 3600),
        plan_cache_ttl: Duration::from_secs(24 * 3600),
        ..Config::default()
    };
    // Leases from memory: a hard limit's units are taken a lease at a time.
    let allowances = tollgate_store::memory::MemoryAllowances::deployment(1).remove(0);
    let authorizer = Authorizer::new(config, store, allowances, Arc::new(SystemClock));
    authorizer.prime_plans(vec![plan("pro"), plan("anonymous")]);
    let key = ApiKey::parse(DEMO_KEY).expect("key");
    authorizer.prime_key(
        &key,
        Found {
            record: Some(KeyRecord {
                key_id: key.key_id(),
                customer: "demo".into(),
                plan: "pro".into(),
                status: KeyStatus::Active,
                expires_at: None,
                valid_until: None,
            }),
            blocks: vec![],
        },
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/authorizer/");
    for file in [
        "rest-request-demo-key.json",
        "token-demo-key.json",
        "http-v2-demo-key.json",
    ] {
        let event = std::fs::read(format!("{dir}{file}")).expect("event");
        let start = Instant::now();
        for _ in 0..n {
            let out = rt
                .block_on(authorizer.handle_bytes(std::hint::black_box(&event)))
                .expect("response");
            assert!(!out.get().contains("\"Deny\""), "{}", out.get());
        }
        if n > 0 {
            println!(
                "{file}: {:.2} µs per decision",
                start.elapsed().as_secs_f64() * 1e6 / n as f64
            );
        }
    }
}
