//! What every tollgate Lambda function shares, so that each concern is
//! written once:
//!
//! - [`env`]: the one reader of `TOLLGATE_*` variables, with one error type
//!   that names the failing variable and one boolean grammar.
//! - [`telemetry`]: the one tracing set-up, honouring Lambda's advanced
//!   logging controls (`AWS_LAMBDA_LOG_LEVEL`, `AWS_LAMBDA_LOG_FORMAT`).
//! - [`metrics`]: CloudWatch metrics as one embedded-metric-format line
//!   per invocation, in the `Tollgate` namespace.
//!
//! The DynamoDB client recipe lives with the tables in `tollgate_store::client`.

pub mod env;
pub mod metrics;
pub mod telemetry;

pub use env::{Env, EnvError, Peer};
pub use telemetry::init_tracing;
