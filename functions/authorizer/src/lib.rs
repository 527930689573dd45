//! tollgate's authorizer: API-key and anonymous free-tier authorization for
//! API Gateway (REST TOKEN and REQUEST authorizers, HTTP API payload 2.0),
//! in at most one DynamoDB read per decision and none on a cache hit.
//!
//! - [`config`]: the `TOLLGATE_*` settings.
//! - [`event`]: parsing events and finding the caller (key, IP, Referer).
//! - [`cache`]: the per-container lookup cache and its clock.
//! - [`handler`]: the [`Authorizer`] itself: caches, store, rules.
//! - [`response`]: IAM policy and simple responses with their context.
//!
//! The rules are `tollgate_core::decide`; this crate gathers what they
//! need as cheaply as possible and writes the answer API Gateway expects.

pub mod cache;
pub mod config;
pub mod event;
pub mod handler;
pub mod response;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

pub use cache::{Clock, Found, ManualClock, SystemClock};
pub use config::Config;
pub use event::{Caller, Event, EventKind};
pub use handler::{Authorizer, Unauthorized};
pub use response::Outcome;

/// The event as the Lambda runtime hands it over: its raw JSON, or nothing
/// if it was not JSON. Deserialising never fails, so a malformed event
/// reaches the handler and is answered with `Unauthorized` (rather than the
/// runtime's own deserialisation error, which API Gateway would turn into a
/// 500), and its content is never echoed into an error message.
pub struct Incoming(Option<Box<RawValue>>);

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the event: it may hold a key.
        f.write_str(match self.0 {
            Some(_) => "Incoming(<json>)",
            None => "Incoming(<malformed>)",
        })
    }
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Incoming(Box::<RawValue>::deserialize(d).ok()))
    }
}

impl Authorizer {
    /// Handles an event from the Lambda runtime: the response as raw JSON.
    pub async fn handle_incoming(&self, event: Incoming) -> Result<Box<RawValue>, Unauthorized> {
        let Some(raw) = event.0 else {
            tracing::info!("unauthorized: the event is not JSON");
            return Err(Unauthorized);
        };
        self.handle_bytes(raw.get().as_bytes()).await
    }
}

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
