//! Ingest's routing and its usage API's query grammar, for the cargo-fuzz
//! target `fuzz/ingest` `api`: [`fuzz_request`] (a method, a path and
//! query parameters: the route, `GET /v1/usage`'s query with its paging
//! tokens, `GET /v1/usage/top`'s query).

use ::ingest::route::{route, Route};
use tollgate_app::top::{parse_top_query, MAX_LIMIT};
use tollgate_app::usage::{
    page_token, parse_page_token, parse_usage_query, QueryError, UsageQuery, MAX_PAGE_PERIODS,
    QUERY_WINDOWS,
};
use tollgate_core::{Identity, MeterName, Window};

/// The instant the queries are read at (2026-11-18T21:46:40Z).
pub const NOW: i64 = 1_795_000_000_000;

/// A request as the entry reads its bytes: the first line is the method,
/// the second the path, each further line one query parameter
/// `name=value` (the first of a name counts, as API Gateway's
/// `first(name)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRequest {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query parameters, in order.
    pub params: Vec<(String, String)>,
}

impl RawRequest {
    /// Reads `bytes` (lossy UTF-8) as a request.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.split('\n');
        let method = lines.next().unwrap_or_default().to_owned();
        let path = lines.next().unwrap_or_default().to_owned();
        let params = lines
            .map(|l| match l.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (l.to_owned(), String::new()),
            })
            .collect();
        RawRequest {
            method,
            path,
            params,
        }
    }

    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

/// Routes the request and parses its query as its route would. Panics
/// only if an invariant breaks: a trailing `/` changes no route, a route
/// is taken only with its method; an accepted usage query has `from` ≤
/// `to` in a queryable window, a limit in range, an identity and a meter
/// that print and parse back, and page tokens of its periods that read
/// back as those periods (a token that reads is one of its periods); a
/// refused query is a bad parameter (400), never a store error; an
/// accepted top query is of a month period with a limit in range.
pub fn fuzz_request(bytes: &[u8]) {
    let req = RawRequest::of_bytes(bytes);
    let r = route(&req.method, &req.path);
    assert_eq!(r, route(&req.method, &format!("{}/", req.path)));
    match r {
        Route::Events => assert_eq!(req.method, "POST"),
        Route::Usage | Route::Top => assert_eq!(req.method, "GET"),
        Route::MethodNotAllowed { allowed } => assert_ne!(req.method, allowed),
        Route::NotFound => {}
    }
    let get = |name: &str| req.param(name);
    match parse_usage_query(get, NOW) {
        Ok(q) => check_usage_query(&q),
        Err(e) => assert!(matches!(e, QueryError::Param { .. }), "{e}"),
    }
    match parse_top_query(get) {
        Ok(t) => {
            assert_eq!(t.period.window, Window::Month);
            assert!((1..=MAX_LIMIT).contains(&t.limit));
            assert_eq!(t.meter.to_string().parse::<MeterName>().ok(), Some(t.meter));
        }
        Err(e) => assert!(matches!(e, QueryError::Param { .. }), "{e}"),
    }
}

fn check_usage_query(q: &UsageQuery) {
    assert!(q.from <= q.to, "{q:?}");
    assert!(QUERY_WINDOWS.contains(&q.window));
    assert_eq!((q.from.window, q.to.window), (q.window, q.window));
    assert!((1..=MAX_PAGE_PERIODS).contains(&q.limit));
    assert_eq!(
        q.identity.to_string().parse::<Identity>().ok().as_ref(),
        Some(&q.identity)
    );
    assert_eq!(
        q.meter.to_string().parse::<MeterName>().ok().as_ref(),
        Some(&q.meter)
    );
    for period in [q.from, q.to] {
        let token = page_token(&period);
        assert_eq!(parse_page_token(&token, q).ok(), Some(period), "{token}");
    }
    if let Some(token) = &q.next {
        match parse_page_token(token, q) {
            Ok(p) => {
                assert!(p.window == q.window && q.from <= p && p <= q.to);
                assert_eq!(parse_page_token(&page_token(&p), q).ok(), Some(p));
            }
            Err(e) => assert!(matches!(e, QueryError::Param { param: "next", .. })),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn request(method: &str, path: &str, params: &[(&str, &str)]) -> Vec<u8> {
        let mut text = format!("{method}\n{path}");
        for (n, v) in params {
            text.push_str(&format!("\n{n}={v}"));
        }
        text.into_bytes()
    }

    #[test]
    fn the_entry_reads_a_usage_query_and_its_token() {
        let bytes = request(
            "GET",
            "/prod/v1/usage",
            &[
                ("identity", "key:k_0123456789abcdef"),
                ("meter", "requests"),
                ("from", "2026-11-01"),
                ("to", "2026-11-30"),
                ("limit", "7"),
            ],
        );
        let req = RawRequest::of_bytes(&bytes);
        assert_eq!(route(&req.method, &req.path), Route::Usage);
        let q = parse_usage_query(|n| req.param(n), NOW).unwrap();
        assert_eq!(q.limit, 7);
        let mid = Window::Day.period_of(NOW - 10 * 86_400_000).unwrap();
        assert_eq!(parse_page_token(&page_token(&mid), &q).unwrap(), mid);
        // A token past the query's periods is refused.
        let later = Window::Day.period_of(NOW + 40 * 86_400_000).unwrap();
        assert!(parse_page_token(&page_token(&later), &q).is_err());
        fuzz_request(&bytes);
    }

    fn param() -> impl Strategy<Value = (String, String)> {
        let name = prop_oneof![
            Just("identity"),
            Just("meter"),
            Just("window"),
            Just("from"),
            Just("to"),
            Just("regions"),
            Just("limit"),
            Just("next"),
            Just("period"),
        ];
        let value = prop_oneof![
            Just("key:k_0123456789abcdef".to_owned()),
            Just("ip:203.0.113.7".to_owned()),
            Just("ip:2001:db8::/64".to_owned()),
            Just("requests".to_owned()),
            Just("day".to_owned()),
            Just("hour".to_owned()),
            Just("month".to_owned()),
            Just("2026-11".to_owned()),
            Just("2026-11-18".to_owned()),
            Just("2026-11-18T21".to_owned()),
            Just("1795000000000".to_owned()),
            Just("-9223372036854775808".to_owned()),
            Just("true".to_owned()),
            Just("1000".to_owned()),
            "[a-zA-Z0-9_#:~-]{0,24}",
            "\\PC{0,16}",
        ];
        (name, value).prop_map(|(n, v)| (n.to_owned(), v))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn structured_queries_keep_the_invariants(
            route in prop_oneof![Just("/v1/usage"), Just("/v1/usage/top"), Just("/s/v1/events/"), Just("/x")],
            method in prop_oneof![Just("GET"), Just("POST"), Just("get")],
            params in proptest::collection::vec(param(), 0..10),
            token in proptest::option::of((0i64..400, any::<bool>())),
        ) {
            let mut params: Vec<(String, String)> = params;
            if let Some((days, garble)) = token {
                let p = Window::Day.period_of(NOW - days * 86_400_000).unwrap();
                let mut t = page_token(&p);
                if garble { t.push('A'); }
                params.insert(0, ("next".into(), t));
            }
            let refs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            fuzz_request(&request(method, route, &refs));
        }

        #[test]
        fn arbitrary_bytes_keep_the_invariants(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            fuzz_request(&bytes);
        }
    }
}
