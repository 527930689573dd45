//! The use cases the `tollgate` CLI, the management routes and the
//! functions share, on the store's ports (no SDK type, no function crate):
//!
//! - [`usage`]: one identity's usage of a meter, period by period, summed
//!   over regions (`GET /v1/usage`, `tollgate usage show`), and the query's
//!   parameter grammar, [`usage::QueryError`] its errors.
//! - [`top`]: the identities with the largest usage of a meter in a period,
//!   from the top index (`GET /v1/usage/top`, `tollgate usage top`).
//! - [`recompute`]: blocks re-checked after plans change
//!   (`tollgate recompute-blocks`), by the rules of `tollgate_core::blocking`.
//! - [`plan_file`]: plan files (`tollgate plans put`), YAML or JSON.
//! - [`plans`]: the plan cache (plans and key plans for a short time).
//! - [`commit`]: the one exactly-once committer of counted usage (ingest
//!   and the log-processor): chunks with their dedupe markers, `max`
//!   counters, anonymous counters in bucket parts.
//! - [`windows`]: the windows each meter is counted in, as the
//!   configuration and the plans say (log-processor, ingest).

pub mod commit;
pub mod plan_file;
pub mod plans;
pub mod recompute;
pub mod top;
pub mod usage;
pub mod windows;
