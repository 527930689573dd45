//! tollgate's authorizer: API-key and anonymous free-tier authorization for
//! API Gateway (REST TOKEN and REQUEST authorizers, HTTP API payload 2.0),
//! in at most one DynamoDB read per decision and none on a cache hit.
//!
//! A request crosses five files, one way (event, identity, decision,
//! response):
//!
//! 1. `main.rs`: the runtime hands the [`Incoming`] event to
//!    [`Authorizer::handle_incoming`].
//! 2. [`handler`]: the [`Authorizer`] runs the steps below in order and
//!    makes the decision: plans and lookups from its caches or its store
//!    ports ([`tollgate_store::KeyLookup`], [`tollgate_store::PlanSource`]),
//!    the rules `tollgate_core::decide`, one [`Outcome`].
//! 3. [`event`]: the event parsed ([`Event`]) and who is calling ([`Caller`]).
//! 4. [`cache`]: the per-container lookup cache the decision reads first.
//! 5. [`response`]: the [`Outcome`] as `Unauthorized`, an IAM policy or a
//!    simple response, rendered once.
//!
//! [`metrics`] prints each decision's CloudWatch metric (EMF), by reason
//! and plan.
//!
//! [`config`] holds the `TOLLGATE_*` settings, read once at start-up
//! through `tollgate_lambda::Env`.
//!
//! The rules are `tollgate_core::decide`; this crate gathers what they
//! need as cheaply as possible and writes the answer API Gateway expects.

pub mod cache;
pub mod config;
pub mod event;
pub mod handler;
mod leases;
pub mod metrics;
pub mod response;

pub use cache::{Clock, Found, ManualClock, SystemClock};
pub use config::Config;
pub use event::{Caller, Event, EventKind, Incoming};
pub use handler::Authorizer;
pub use response::{Outcome, Unauthorized};
pub use tollgate_lambda::init_tracing;
