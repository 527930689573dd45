//! What a region costs when no call flows: the template's schedule invokes
//! quota-sync every 5 minutes to retry pending copies (none pending when
//! idle). Measured once per region before the play, on the real handler.

use std::time::Instant;

use anyhow::{anyhow, Result};
use tracing::Instrument;

use super::{billed, capture, Region};

/// Scheduled invocations of quota-sync per region per month
/// (`rate(5 minutes)` in template.yaml, a test reads it).
pub const SCHEDULED_PER_MONTH: f64 = 12.0 * 730.0;

/// One idle invocation, averaged over the regions.
#[derive(Debug, Default, Clone)]
pub(super) struct Idle {
    /// Billed seconds (rounded up to 1 ms) per invocation.
    pub billed_seconds: f64,
    /// DynamoDB read and write units per invocation.
    pub read: f64,
    pub write: f64,
    /// Bytes logged per invocation (tracing and EMF lines, +26 per event).
    pub log_bytes: f64,
    /// Custom metrics the invocation publishes in its region.
    pub metrics: usize,
}

/// Invokes each region's quota-sync with the schedule's event once.
pub(super) async fn measure(regions: &[Region]) -> Result<Idle> {
    capture::reset(regions.len());
    let mut idle = Idle::default();
    for (r, region) in regions.iter().enumerate() {
        let (read0, write0) = region.counters[3].total_units();
        let _invoking = capture::invoking(r, 3);
        let started = Instant::now();
        let outcome = region
            .quota_sync
            .handle(&serde_json::json!({"tollgate": quota_sync::handler::RETRY_PENDING}))
            .instrument(capture::request_span())
            .await
            .map_err(|e| anyhow!("quota-sync retry-pending: {e}"))?;
        quota_sync::metrics::emit(&outcome.stats);
        idle.billed_seconds += billed(started.elapsed().as_secs_f64());
        let (read1, write1) = region.counters[3].total_units();
        idle.read += read1 - read0;
        idle.write += write1 - write0;
    }
    let printed = capture::snapshot();
    let n = regions.len().max(1) as f64;
    let p = printed.functions[3];
    idle.billed_seconds /= n;
    idle.read /= n;
    idle.write /= n;
    idle.log_bytes = (p.bytes
        + p.emf_bytes
        + (p.lines + p.emf_lines) * super::prices::LOGS_EVENT_OVERHEAD_BYTES)
        as f64
        / n;
    idle.metrics = printed.series.iter().map(|s| s.len()).max().unwrap_or(0);
    Ok(idle)
}
