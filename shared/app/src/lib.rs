//! The use cases the `tollgate` CLI, the management routes and the
//! functions share, on the store's ports (no SDK type, no function crate):
//!
//! - [`usage`]: one identity's usage of a meter, period by period, summed
//!   over regions (`GET /v1/usage`, `tollgate usage show`), and the query's
//!   parameter grammar, [`usage::QueryError`] its errors.
//! - [`top`]: the identities with the largest usage of a meter in a period,
//!   from the top index (`GET /v1/usage/top`, `tollgate usage top`).
//! - [`evaluate`]: a counter's global value and the block it calls for
//!   under a plan (quota-sync's handler and [`recompute`]).
//! - [`recompute`]: blocks re-checked after plans change
//!   (`tollgate recompute-blocks`).
//! - [`plans`]: the plan cache (plans and key plans for a short time).

pub mod evaluate;
pub mod plans;
pub mod recompute;
pub mod top;
pub mod usage;
