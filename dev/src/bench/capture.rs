//! What the functions print, counted as CloudWatch Logs would ingest it.
//!
//! The cost run calls the handlers in this process, so what they print is
//! captured here instead of a Lambda log group: every tracing event at the
//! template's level (INFO: `ApplicationLogLevel` and `RUST_LOG`), in the
//! functions' own JSON format ([`tollgate_lambda::telemetry::FlatJson`]),
//! inside a span like lambda_runtime's (`requestId`, `xrayTraceId`), and
//! every embedded-metric line (through [`tollgate_lambda::metrics::capture`]),
//! rendered with a function name of a deployed stack's length. Each line is
//! attributed to the function and region being invoked ([`invoking`]);
//! lines printed outside an invocation (the harness's own) are not counted.
//! Platform lines (`platform.report`...) are not printed at the template's
//! `SystemLogLevel` (WARN), so none are counted.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use tollgate_lambda::metrics::Line;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::FUNCTIONS;

/// Function names as a stack `tollgate-prod` deploys them
/// (`<stack>-<logical id>-<12 characters>`), which every EMF line carries.
const DEPLOYED_NAMES: [&str; 4] = [
    "tollgate-prod-AuthorizerFunction-A1B2C3D4E5F6",
    "tollgate-prod-LogProcessorFunction-A1B2C3D4E5F6",
    "tollgate-prod-IngestFunction-A1B2C3D4E5F6",
    "tollgate-prod-QuotaSyncFunction-A1B2C3D4E5F6",
];

/// No invocation under way.
const NONE: usize = usize::MAX;

/// `region * 4 + function` of the invocation under way, or [`NONE`].
static CURRENT: AtomicUsize = AtomicUsize::new(NONE);
/// Invocations given a span so far (their request ids).
static SPANS: AtomicU64 = AtomicU64::new(0);
static TALLY: Mutex<Option<Tally>> = Mutex::new(None);

/// What one function printed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Printed {
    /// Tracing lines and their bytes (without the newline).
    pub lines: u64,
    pub bytes: u64,
    /// Embedded-metric lines and their bytes.
    pub emf_lines: u64,
    pub emf_bytes: u64,
}

/// Everything printed since the last [`reset`].
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// By function, in [`FUNCTIONS`]' order.
    pub functions: [Printed; 4],
    /// The distinct custom metrics (function, dimension values, metric
    /// name) each region published: CloudWatch bills each one a month.
    pub series: Vec<BTreeSet<String>>,
}

/// Counts the functions' tracing lines (at INFO) from now on, and sends the
/// harness's own at `RUST_LOG`'s level to stderr. Call once, before any
/// handler runs; a second call (or another subscriber) leaves the first.
pub fn install() {
    let counted = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(tollgate_lambda::telemetry::FlatJson)
        .with_writer(|| Counting)
        .with_filter(EnvFilter::new("info,tollgate_dev=off,tollgate_testkit=off"));
    let own = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::from_default_env());
    let _ = tracing_subscriber::registry()
        .with(counted)
        .with(own)
        .try_init();
    tollgate_lambda::metrics::capture(emf_sink);
}

/// Starts counting afresh.
pub fn reset(regions: usize) {
    if let Ok(mut t) = TALLY.lock() {
        *t = Some(Tally {
            functions: [Printed::default(); 4],
            series: vec![BTreeSet::new(); regions],
        });
    }
}

/// What was printed since [`reset`].
pub fn snapshot() -> Tally {
    TALLY
        .lock()
        .ok()
        .and_then(|t| t.clone())
        .unwrap_or_default()
}

/// While the guard lives, what is printed is `function`'s (an index of
/// [`FUNCTIONS`]) in `region`.
pub fn invoking(region: usize, function: usize) -> Invoking {
    CURRENT.store(region * FUNCTIONS.len() + function, Ordering::SeqCst);
    Invoking
}

/// See [`invoking`].
#[must_use]
pub struct Invoking;

impl Drop for Invoking {
    fn drop(&mut self) {
        CURRENT.store(NONE, Ordering::SeqCst);
    }
}

/// The span lambda_runtime opens around an invocation, with a request id
/// and a trace header of the lengths Lambda gives them (Lambda sends a
/// trace header whether or not X-Ray is on); its fields are on every line.
pub fn request_span() -> tracing::Span {
    let n = SPANS.fetch_add(1, Ordering::Relaxed);
    let request_id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n as u32,
        (n >> 32) as u16,
        n % 4096,
        (n / 7) % 4096,
        n
    );
    let trace = format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        n as u32,
        u128::from(n),
        n
    );
    tracing::info_span!("Lambda runtime invoke", requestId = %request_id, xrayTraceId = %trace)
}

/// Adds to the function being invoked.
fn add(f: impl FnOnce(&mut Tally, usize, usize)) {
    let current = CURRENT.load(Ordering::SeqCst);
    if current == NONE {
        return;
    }
    if let Ok(mut t) = TALLY.lock() {
        if let Some(t) = t.as_mut() {
            let (region, function) = (current / FUNCTIONS.len(), current % FUNCTIONS.len());
            if region < t.series.len() {
                f(t, region, function);
            }
        }
    }
}

/// Receives every EMF line instead of stdout.
fn emf_sink(line: &Line<'_>) {
    add(|t, region, function| {
        let text = line.render(
            DEPLOYED_NAMES[function],
            chrono::Utc::now().timestamp_millis(),
        );
        let p = &mut t.functions[function];
        p.emf_lines += 1;
        p.emf_bytes += text.len() as u64;
        let value = |name: &str| {
            line.dimensions
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("none", |(_, v)| *v)
        };
        for set in line.dimension_sets {
            let dims: Vec<String> = set.iter().map(|d| format!("{d}={}", value(d))).collect();
            for m in line.metrics {
                t.series[region].insert(format!(
                    "{}|{}|{}",
                    FUNCTIONS[function],
                    dims.join(","),
                    m.name
                ));
            }
        }
    });
}

/// The tracing layer's writer: counts, prints nothing.
struct Counting;

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let newlines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        add(|t, _, function| {
            let p = &mut t.functions[function];
            p.lines += newlines;
            p.bytes += buf.len() as u64 - newlines;
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
