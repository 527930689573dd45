//! The whole handler, from event JSON to response JSON, on a cache hit
//! (plans and the key's lookup cached; the store is never reached).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authorizer::{Authorizer, Config, Found, SystemClock};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Builder;
use tollgate_core::{ApiKey, FailurePolicy, KeyRecord, KeyStatus, Limit, MeterName, Plan, Window};
use tollgate_store::KeysStore;

fn plan(name: &str) -> Plan {
    Plan {
        name: name.into(),
        limits: vec![
            Limit {
                meter: MeterName::requests(),
                window: Window::Day,
                limit: 1500,
            },
            Limit {
                meter: MeterName::requests(),
                window: Window::Month,
                limit: 30_000,
            },
        ],
        overage: Default::default(),
        failure: FailurePolicy::Closed,
    }
}

fn bench(c: &mut Criterion) {
    let rt = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A store at a closed port: a cache miss would fail, so a hit is proven.
    let store = KeysStore::new(
        tollgate_store::local_client("http://127.0.0.1:9", "local-a"),
        "bench",
    );
    // Long TTLs so every iteration is a hit, however long criterion runs.
    let config = Config {
        cache_ttl: Duration::from_secs(24 * 3600),
        plan_cache_ttl: Duration::from_secs(24 * 3600),
        ..Config::default()
    };
    // Leases from memory: a hard limit's units are taken a lease at a time.
    let allowances = tollgate_store::memory::MemoryAllowances::deployment(1).remove(0);
    let authorizer = Authorizer::new(config, store, allowances, Arc::new(SystemClock));
    authorizer.prime_plans(vec![plan("pro"), plan("anonymous")]);
    let key = ApiKey::generate([7u8; 32]);
    authorizer.prime_key(
        &key,
        Found {
            record: Some(KeyRecord {
                key_id: key.key_id(),
                customer: "acme".into(),
                plan: "pro".into(),
                status: KeyStatus::Active,
                expires_at: None,
                valid_until: None,
            }),
            blocks: vec![],
        },
    );
    let rest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/authorizer/rest-request-demo-key.json"
    ))
    .expect("event file")
    .replace(authorizer_demo_key(), key.expose_secret());
    let token = format!(
        r#"{{"type":"TOKEN","authorizationToken":"Bearer {}","methodArn":"arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets"}}"#,
        key.expose_secret()
    );
    let v2 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/authorizer/http-v2-demo-key.json"
    ))
    .expect("event file")
    .replace(authorizer_demo_key(), key.expose_secret());

    for (name, event) in [("rest_request", &rest), ("token", &token), ("http_v2", &v2)] {
        let out = rt
            .block_on(authorizer.handle_bytes(event.as_bytes()))
            .expect("response");
        assert!(
            out.get().contains("\"Allow\"") || out.get().contains("\"isAuthorized\":true"),
            "{name}: {out}"
        );
        c.bench_function(&format!("handler_cache_hit_{name}"), |b| {
            b.iter(|| {
                rt.block_on(authorizer.handle_bytes(black_box(event.as_bytes())))
                    .expect("response")
            })
        });
    }
}

/// The demo key that the sample events carry.
fn authorizer_demo_key() -> &'static str {
    "tg_live_000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
}

criterion_group!(benches, bench);
criterion_main!(benches);
