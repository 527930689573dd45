//! tollgate's authorizer: API-key and anonymous free-tier authorization for
//! API Gateway (REST TOKEN and REQUEST authorizers, HTTP API payload 2.0),
//! in at most one DynamoDB read per decision and none on a cache hit.
//!
//! - [`config`]: the `TOLLGATE_*` settings.
//! - [`event`]: parsing events and finding the caller (key, IP, Referer).
//! - [`cache`]: the per-container lookup cache and its clock.
//! - [`handler`]: the [`Authorizer`] itself, from the runtime's event to
//!   the rendered response: caches, store, rules.
//! - [`response`]: IAM policy and simple responses with their context.
//!
//! The rules are `tollgate_core::decide`; this crate gathers what they
//! need as cheaply as possible and writes the answer API Gateway expects.

pub mod cache;
pub mod config;
pub mod event;
pub mod handler;
pub mod response;

use std::str::FromStr;

pub use cache::{Clock, Found, ManualClock, SystemClock};
pub use config::Config;
pub use event::{Caller, Event, EventKind};
pub use handler::{Authorizer, Incoming, Unauthorized};
pub use response::Outcome;

/// Sets up logging as Lambda's advanced logging controls ask
/// (`AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`). The Lambda runtime's own TRACE output,
/// which prints whole events (and so API keys), is never enabled.
pub fn init_tracing() {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| LevelFilter::from_str(&l).ok())
        .unwrap_or(LevelFilter::INFO);
    let mut filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("");
    if let Ok(directive) = "lambda_runtime=debug".parse() {
        if level > LevelFilter::DEBUG {
            filter = filter.add_directive(directive);
        }
    }
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
