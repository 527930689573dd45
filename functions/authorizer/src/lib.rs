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

pub use cache::{Clock, Found, ManualClock, SystemClock};
pub use config::Config;
pub use event::{Caller, Event, EventKind};
pub use handler::{Authorizer, Incoming, Unauthorized};
pub use response::Outcome;
pub use tollgate_lambda::init_tracing;
