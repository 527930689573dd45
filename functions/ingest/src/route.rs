//! Which route a request takes: its method and path (a stage or a custom
//! domain's base path may stand before `/v1/...`; a trailing `/` is
//! ignored). Pure, so the fuzz target runs it on any bytes.

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/events`.
    Events,
    /// `GET /v1/usage/top`.
    Top,
    /// `GET /v1/usage`.
    Usage,
    /// A known path with another method: 405, saying which method to use.
    MethodNotAllowed {
        /// The method the path takes.
        allowed: &'static str,
    },
    /// No route: 404.
    NotFound,
}

/// The route of `method` and `path`.
pub fn route(method: &str, path: &str) -> Route {
    let path = path.trim_end_matches('/');
    let (route, allowed) = if path.ends_with("/v1/events") {
        (Route::Events, "POST")
    } else if path.ends_with("/v1/usage/top") {
        (Route::Top, "GET")
    } else if path.ends_with("/v1/usage") {
        (Route::Usage, "GET")
    } else {
        return Route::NotFound;
    };
    if method == allowed {
        route
    } else {
        Route::MethodNotAllowed { allowed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path_suffix() {
        assert_eq!(route("POST", "/v1/events"), Route::Events);
        assert_eq!(route("POST", "/prod/v1/events/"), Route::Events);
        assert_eq!(route("GET", "/v1/usage"), Route::Usage);
        assert_eq!(route("GET", "/v1/usage/top"), Route::Top);
        assert_eq!(
            route("GET", "/v1/events"),
            Route::MethodNotAllowed { allowed: "POST" }
        );
        assert_eq!(
            route("POST", "/v1/usage"),
            Route::MethodNotAllowed { allowed: "GET" }
        );
        assert_eq!(route("GET", "/v1/usagetop"), Route::NotFound);
        assert_eq!(route("GET", ""), Route::NotFound);
    }
}
