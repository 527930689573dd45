//! The ingest function: meter events posted by the provider's backend
//! (`POST /v1/events`), counted exactly once within a dedupe window, and the
//! usage query API (`GET /v1/usage`, `GET /v1/usage/top`).
//!
//! - [`body`]: a request (tollgate's JSON array or NDJSON, or CloudEvents
//!   structured, batch, binary or plain JSON) into one JSON value per event.
//! - [`cloudevents`]: CloudEvents onto tollgate's meter events.
//! - [`validate`]: each event checked, with index, field and reason.
//! - [`commit`]: each event's marker and increments committed together,
//!   through the one committer (`tollgate_app::commit`).
//! - [`stores`]: the stores [`Ingest`] is built on (by `main.rs`).
//! - [`route`]: which route a method and path take.
//! - [`handler`]: the HTTP routes (the usage queries themselves are
//!   `tollgate_app::usage` and `tollgate_app::top`, shared with the CLI);
//!   [`config`]: `TOLLGATE_*` settings.
//! - [`response`]: a response as data, rendered once.
//! - [`metrics`]: each request's outcome as CloudWatch metrics (EMF).

pub mod body;
pub mod cloudevents;
pub mod commit;
pub mod config;
pub mod handler;
pub mod meters;
pub mod metrics;
pub mod request;
pub mod response;
pub mod route;
pub mod stores;
pub mod validate;

pub use config::Config;
pub use handler::Ingest;
pub use request::EventsRequest;
pub use response::ApiResponse;
pub use stores::Stores;
