//! CloudWatch metrics in the embedded metric format (EMF): one JSON line
//! on stdout per invocation, which CloudWatch Logs turns into metrics with
//! no API call and no extra dependency.
//!
//! A line looks like
//!
//! ```json
//! {"_aws":{"Timestamp":1764633600000,"CloudWatchMetrics":[{"Namespace":"Tollgate",
//!   "Dimensions":[["FunctionName"],["FunctionName","Reason"]],
//!   "Metrics":[{"Name":"Decisions","Unit":"Count"}]}]},
//!  "FunctionName":"tollgate-prod-AuthorizerFunction-Ab12","Reason":"allowed","Decisions":1}
//! ```
//!
//! Every dimension set starts with `FunctionName` (the Lambda function's
//! name, `AWS_LAMBDA_FUNCTION_NAME`), so two stages or stacks in one account
//! and region never mix. Other dimensions must have a bounded set of values:
//! plan names and fixed reason codes, never a key id, an IP or a Referer.
//!
//! Lines are printed only inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set)
//! and unless `TOLLGATE_METRICS` is false (`false`, `0`, `no`, `off`...), so
//! tests and benchmarks print nothing. A line is rendered into one
//! `String` and written with one call: no other allocation per invocation.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use crate::env::Env;

/// The CloudWatch namespace of every tollgate metric.
pub const NAMESPACE: &str = "Tollgate";

/// The dimension every metric has: the function's name.
pub const FUNCTION_DIMENSION: &str = "FunctionName";

/// The variable that turns the metric lines off (`false`, `0`, `no`, `off`).
pub const METRICS_VAR: &str = "TOLLGATE_METRICS";

/// The longest dimension value written; longer values are cut (CloudWatch
/// takes at most 1024 characters).
pub const MAX_DIMENSION_VALUE: usize = 128;

/// A metric's unit (CloudWatch's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration.
    Milliseconds,
}

impl Unit {
    /// CloudWatch's name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric value of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric<'a> {
    /// The metric's name (a fixed name: `Decisions`, `LinesCounted`...).
    pub name: &'a str,
    /// Its unit.
    pub unit: Unit,
    /// Its value for this invocation.
    pub value: u64,
}

/// A `Count` metric.
pub const fn count(name: &str, value: u64) -> Metric<'_> {
    Metric {
        name,
        unit: Unit::Count,
        value,
    }
}

/// The metrics of one invocation: what [`emit`] prints.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Dimension sets besides `FunctionName`, which leads each of them; an
    /// empty set is `FunctionName` alone.
    pub dimension_sets: &'a [&'a [&'a str]],
    /// The value of every dimension the sets name (`FunctionName` apart).
    pub dimensions: &'a [(&'a str, &'a str)],
    /// The values.
    pub metrics: &'a [Metric<'a>],
}

impl Line<'_> {
    /// A line with the `FunctionName` dimension alone.
    pub fn function_only<'a>(metrics: &'a [Metric<'a>]) -> Line<'a> {
        Line {
            dimension_sets: &[&[]],
            dimensions: &[],
            metrics,
        }
    }

    /// The EMF JSON text of the line (no newline), for `function` at
    /// `timestamp_ms` (Unix milliseconds).
    pub fn render(&self, function: &str, timestamp_ms: i64) -> String {
        let mut out = String::with_capacity(
            192 + self.dimension_sets.len() * 48
                + self.dimensions.len() * 48
                + self.metrics.len() * 64,
        );
        out.push_str("{\"_aws\":{\"Timestamp\":");
        let _ = write!(out, "{timestamp_ms}");
        out.push_str(",\"CloudWatchMetrics\":[{\"Namespace\":");
        push_str(&mut out, NAMESPACE);
        out.push_str(",\"Dimensions\":[");
        for (i, set) in self.dimension_sets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            push_str(&mut out, FUNCTION_DIMENSION);
            for name in set.iter() {
                out.push(',');
                push_str(&mut out, name);
            }
            out.push(']');
        }
        out.push_str("],\"Metrics\":[");
        for (i, m) in self.metrics.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"Name\":");
            push_str(&mut out, m.name);
            out.push_str(",\"Unit\":");
            push_str(&mut out, m.unit.as_str());
            out.push('}');
        }
        out.push_str("]}]},");
        push_str(&mut out, FUNCTION_DIMENSION);
        out.push(':');
        push_str(&mut out, dimension_value(function));
        for (name, value) in self.dimensions {
            out.push(',');
            push_str(&mut out, name);
            out.push(':');
            push_str(&mut out, dimension_value(value));
        }
        for m in self.metrics {
            out.push(',');
            push_str(&mut out, m.name);
            let _ = write!(out, ":{}", m.value);
        }
        out.push('}');
        out
    }
}

/// Where metric lines go instead of stdout once [`capture`] set it. Never
/// set in a function: only a benchmark running the handlers in process.
static SINK: OnceLock<fn(&Line<'_>)> = OnceLock::new();

/// Sends every metric line of this process to `sink` instead of stdout,
/// whatever the environment, so that a benchmark running the handlers in
/// process can count the bytes and metrics Lambda would ingest. Returns
/// false (and changes nothing) when a sink was already set.
pub fn capture(sink: fn(&Line<'_>)) -> bool {
    SINK.set(sink).is_ok()
}

/// Prints `line` on stdout, as one line, when metrics are on (see the
/// module's documentation); otherwise does nothing. With a [`capture`]
/// sink, hands the line to it instead.
pub fn emit(line: &Line<'_>) {
    if let Some(sink) = SINK.get() {
        sink(line);
        return;
    }
    let Some(function) = function_name() else {
        return;
    };
    let mut text = line.render(function, now_millis());
    text.push('\n');
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// The function's name when metric lines are printed, read once.
fn function_name() -> Option<&'static str> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| enabled_from(|name| std::env::var(name).ok()))
        .as_deref()
}

/// The function's name if metrics are on, from the environment `get`
/// reads. `TOLLGATE_METRICS` takes [`Env::flag`]'s grammar; a value that
/// does not parse leaves metrics on (and says so).
fn enabled_from(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let on = Env::from_lookup(&get)
        .flag(METRICS_VAR, true)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics stay on");
            true
        });
    let name = get("AWS_LAMBDA_FUNCTION_NAME")?;
    let name = name.trim();
    (on && !name.is_empty()).then(|| name.to_owned())
}

/// A dimension value CloudWatch accepts: not empty, not too long.
fn dimension_value(value: &str) -> &str {
    if value.trim().is_empty() {
        return "none";
    }
    if value.len() <= MAX_DIMENSION_VALUE {
        return value;
    }
    let mut end = MAX_DIMENSION_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Appends `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A printed line read back, for the functions' tests of their lines: the
/// line as JSON and the names of its metrics, after checking that it is one
/// EMF directive in [`NAMESPACE`], with the function-only dimension set and
/// every unit `Count`. Panics (it is for tests) when any of that fails.
#[cfg(feature = "testing")]
pub fn read_back_function_only(text: &str) -> (serde_json::Value, Vec<String>) {
    let value: serde_json::Value = serde_json::from_str(text).expect("a metric line is JSON");
    let directives = value["_aws"]["CloudWatchMetrics"]
        .as_array()
        .expect("an EMF line has directives");
    assert_eq!(directives.len(), 1, "one directive");
    let d = &directives[0];
    assert_eq!(d["Namespace"], NAMESPACE);
    assert_eq!(d["Dimensions"], serde_json::json!([[FUNCTION_DIMENSION]]));
    let names = d["Metrics"]
        .as_array()
        .expect("a directive lists its metrics")
        .iter()
        .map(|m| {
            assert_eq!(m["Unit"], "Count");
            m["Name"].as_str().expect("a metric has a name").to_owned()
        })
        .collect();
    (value, names)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::Value;

    fn parse(line: &Line<'_>) -> Value {
        let text = line.render("tollgate-prod-AuthorizerFunction-Ab12", 1_764_633_600_000);
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_line_is_emf_with_its_values_at_the_top_level() {
        let metrics = [count("Decisions", 1), count("StoreFailures", 0)];
        let v = parse(&Line {
            dimension_sets: &[&[], &["Reason"], &["Plan", "Reason"]],
            dimensions: &[("Plan", "pro"), ("Reason", "quota_exceeded")],
            metrics: &metrics,
        });
        assert_eq!(v["_aws"]["Timestamp"], 1_764_633_600_000i64);
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1);
        let d = &directives[0];
        assert_eq!(d["Namespace"], NAMESPACE);
        assert_eq!(
            d["Dimensions"],
            serde_json::json!([
                ["FunctionName"],
                ["FunctionName", "Reason"],
                ["FunctionName", "Plan", "Reason"]
            ])
        );
        assert_eq!(
            d["Metrics"],
            serde_json::json!([{"Name": "Decisions", "Unit": "Count"}, {"Name": "StoreFailures", "Unit": "Count"}])
        );
        assert_eq!(v["FunctionName"], "tollgate-prod-AuthorizerFunction-Ab12");
        assert_eq!(v["Plan"], "pro");
        assert_eq!(v["Reason"], "quota_exceeded");
        assert_eq!(v["Decisions"], 1);
        assert_eq!(v["StoreFailures"], 0);
        // Every dimension a set names has a value; every metric a value.
        for set in d["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                assert!(v[name.as_str().unwrap()].is_string(), "{name}");
            }
        }
        for m in d["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_u64());
        }
    }

    #[test]
    fn values_are_escaped_bounded_and_never_empty() {
        let metrics = [count("Decisions", 1)];
        let long = "p".repeat(300);
        for plan in [
            "a\"b\\c\n\u{1}",
            "",
            "  ",
            long.as_str(),
            "é".repeat(100).as_str(),
        ] {
            let v = parse(&Line {
                dimension_sets: &[&["Plan"]],
                dimensions: &[("Plan", plan)],
                metrics: &metrics,
            });
            let got = v["Plan"].as_str().unwrap();
            assert!(!got.trim().is_empty());
            assert!(got.len() <= MAX_DIMENSION_VALUE);
            if plan.len() <= MAX_DIMENSION_VALUE && !plan.trim().is_empty() {
                assert_eq!(got, plan);
            }
        }
    }

    #[test]
    fn function_only_lines_have_one_dimension_set() {
        let metrics = [
            count("LinesCounted", 7),
            Metric {
                name: "Wait",
                unit: Unit::Milliseconds,
                value: 3,
            },
        ];
        let v = parse(&Line::function_only(&metrics));
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Dimensions"], serde_json::json!([["FunctionName"]]));
        assert_eq!(d["Metrics"][1]["Unit"], "Milliseconds");
        assert_eq!(v["LinesCounted"], 7);
    }

    #[test]
    fn lines_are_printed_only_in_lambda_and_unless_turned_off() {
        let with = |pairs: &[(&str, &str)]| {
            let map: std::collections::HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            enabled_from(move |name| map.get(name).cloned())
        };
        assert_eq!(with(&[]), None);
        assert_eq!(with(&[("AWS_LAMBDA_FUNCTION_NAME", " ")]), None);
        assert_eq!(
            with(&[("AWS_LAMBDA_FUNCTION_NAME", "f")]).as_deref(),
            Some("f")
        );
        for off in ["false", "0", "No", "OFF"] {
            let got = with(&[("AWS_LAMBDA_FUNCTION_NAME", "f"), (METRICS_VAR, off)]);
            assert_eq!(got, None, "{off}");
        }
        for on in ["true", "yes", "", "maybe"] {
            let got = with(&[("AWS_LAMBDA_FUNCTION_NAME", "f"), (METRICS_VAR, on)]);
            assert_eq!(got.as_deref(), Some("f"), "{on}");
        }
    }
}
