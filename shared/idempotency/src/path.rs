//! Simple JSON paths (`$.records[0].body.id`, `body.order_id`,
//! `headers["x-id"]`) over a `serde_json::Value`.

use serde_json::Value;

/// A JSON path that [`JsonPath::parse`] rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path {path:?}: {reason}")]
pub struct PathError {
    /// The path.
    pub path: String,
    /// Why.
    pub reason: &'static str,
}

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Field(String),
    /// An array element.
    Index(usize),
}

/// A simple JSON path: an optional `$`, then fields separated by `.` and
/// array indices in brackets (`$.records[0].body.id`, `body.order_id`,
/// `headers["x-id"]`). When a step meets a string while steps remain, the
/// string is parsed as JSON and the path continues inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    pub(crate) source: String,
    pub(crate) steps: Vec<Step>,
}

impl JsonPath {
    /// Parses a path.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let err = |reason| PathError {
            path: path.to_owned(),
            reason,
        };
        let mut rest = path.trim();
        rest = rest.strip_prefix('$').unwrap_or(rest);
        let mut steps = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| err("unclosed ["))?;
                let inner = r[..end].trim();
                if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(Step::Field(quoted.to_owned()));
                } else if let Some(quoted) =
                    inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
                {
                    steps.push(Step::Field(quoted.to_owned()));
                } else {
                    steps.push(Step::Index(inner.parse().map_err(|_| err("bad index"))?));
                }
                rest = &r[end + 1..];
            } else {
                let r = match rest.strip_prefix('.') {
                    Some(r) => r,
                    None if first => rest,
                    None => return Err(err("expected . or [")),
                };
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(err("empty field name"));
                }
                steps.push(Step::Field(r[..end].to_owned()));
                rest = &r[end..];
            }
            first = false;
        }
        Ok(JsonPath {
            source: path.to_owned(),
            steps,
        })
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The value at this path, if any.
    pub fn select(&self, event: &Value) -> Option<Value> {
        select_steps(event, &self.steps)
    }
}

pub(crate) fn select_steps(cur: &Value, steps: &[Step]) -> Option<Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(cur.clone());
    };
    match (step, cur) {
        (_, Value::String(s)) => select_steps(&serde_json::from_str(s).ok()?, steps),
        (Step::Field(f), Value::Object(m)) => select_steps(m.get(f)?, rest),
        (Step::Index(i), Value::Array(a)) => select_steps(a.get(*i)?, rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_parse_and_select() {
        let e = json!({"a": {"b": [10, {"c": "x"}]}, "body": "{\"id\": 7}", "h": {"x-id": "k"}});
        let sel = |p: &str| JsonPath::parse(p).map(|p| p.select(&e));
        assert_eq!(sel("$.a.b[0]"), Ok(Some(json!(10))));
        assert_eq!(sel("a.b[1].c"), Ok(Some(json!("x"))));
        assert_eq!(sel("body.id"), Ok(Some(json!(7))));
        assert_eq!(sel("h[\"x-id\"]"), Ok(Some(json!("k"))));
        assert_eq!(sel("a.nope"), Ok(None));
        assert_eq!(sel("$"), Ok(Some(e.clone())));
        assert!(JsonPath::parse("a..b").is_err());
        assert!(JsonPath::parse("a[1").is_err());
        assert!(JsonPath::parse("a[x]").is_err());
    }
}
