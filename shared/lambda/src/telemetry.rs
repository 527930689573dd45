//! The one tracing set-up of every function.
//!
//! It follows Lambda's advanced logging controls, as lambda_runtime's own
//! default subscriber does: the level is `AWS_LAMBDA_LOG_LEVEL` (the
//! template's `ApplicationLogLevel`), else `RUST_LOG`, else INFO; lines are
//! JSON unless `AWS_LAMBDA_LOG_FORMAT` is `Text`. Two things differ:
//!
//! - lambda_runtime's own TRACE output, which prints whole events (and so
//!   API keys), is never enabled: it is capped at DEBUG whatever the level;
//! - a JSON line carries every field at its top level, the invocation's
//!   `requestId` (from lambda_runtime's span) included, so that Logs
//!   Insights can filter on `requestId` or on a run summary's counts
//!   without parsing nested objects.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Sets up logging once per process; a second call does nothing.
pub fn init_tracing() {
    let level = level_from(|name| std::env::var(name).ok());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let _ = if text {
        builder.with_target(false).without_time().try_init()
    } else {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init()
    };
}

/// The level asked for: `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO.
fn level_from(get: impl Fn(&str) -> Option<String>) -> LevelFilter {
    get("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| get("RUST_LOG"))
        .and_then(|l| LevelFilter::from_str(l.trim()).ok())
        .unwrap_or(LevelFilter::INFO)
}

/// `level` for everything, lambda_runtime's crates capped at DEBUG.
fn filter(level: LevelFilter) -> EnvFilter {
    let mut filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("");
    if level > LevelFilter::DEBUG {
        for target in ["lambda_runtime=debug", "lambda_runtime_api_client=debug"] {
            if let Ok(directive) = target.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    filter
}

/// One JSON object per event: `level`, `target`, the event's fields
/// (`message` among them) and the fields of every span it is in, all at the
/// top level. An event's own field wins over a span's of the same name.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    merge_json_object(&mut line, fields.fields.as_str());
                }
            }
        }
        let mut visitor = FieldVisitor(&mut line);
        event.record(&mut visitor);
        let meta = event.metadata();
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Adds the members of `text`, a JSON object, to `line`.
fn merge_json_object(line: &mut Map<String, Value>, text: &str) {
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) {
        line.extend(fields);
    }
}

/// Records an event's fields as JSON values.
struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn lines_of(level: LevelFilter, body: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(level))
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, body);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn span_and_event_fields_are_at_the_top_level() {
        let lines = lines_of(LevelFilter::INFO, || {
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "r-1");
            let _guard = span.enter();
            tracing::info!(counted = 3u64, skipped = 0u64, ok = true, "run summary");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["requestId"], "r-1");
        assert_eq!(line["message"], "run summary");
        assert_eq!(line["counted"], 3);
        assert_eq!(line["ok"], true);
        assert_eq!(line["level"], "INFO");
    }

    #[test]
    fn lambda_runtime_trace_is_never_printed() {
        let lines = lines_of(LevelFilter::TRACE, || {
            tracing::trace!(target: "lambda_runtime", event = "{\"x-api-key\":\"tg_live_secret\"}", "raw event");
            tracing::debug!(target: "lambda_runtime", "next invocation");
            tracing::trace!(target: "authorizer", "own trace");
        });
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert!(
            !text.iter().any(|l| l.contains("tg_live_secret")),
            "{text:?}"
        );
        assert!(text.iter().any(|l| l.contains("next invocation")));
        assert!(text.iter().any(|l| l.contains("own trace")));
    }

    #[test]
    fn the_level_follows_lambdas_controls() {
        let get = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(level_from(get(&[])), LevelFilter::INFO);
        assert_eq!(level_from(get(&[("RUST_LOG", "warn")])), LevelFilter::WARN);
        assert_eq!(
            level_from(get(&[
                ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
                ("RUST_LOG", "warn")
            ])),
            LevelFilter::DEBUG
        );
        assert_eq!(
            level_from(get(&[("RUST_LOG", "nonsense")])),
            LevelFilter::INFO
        );
    }
}
