//! `BFF_APIS`: the routes under `/api`, parsed and validated once at start-up.
//!
//! Every refusal names the route (its `path`, or its position when the path itself is
//! the problem) and the key, so a bad deployment stops with one line that says what to
//! change. `BFF_UPSTREAM_URL` alone is the one-route shorthand `/api` → that URL.

use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;
use serde_json::{Map, Value};
use url::Url;

use crate::domain::routes::{ApiRoute, Routes, TokenKind, TokenTarget};
use crate::platform::config::{ConfigError, check_http_url};

const NAME: &str = "BFF_APIS";
const KEYS: &[&str] = &[
    "path",
    "upstream",
    "token",
    "resource",
    "audience",
    "scope",
    "methods",
    "timeout_secs",
];
/// The longest upstream timeout a route may ask for: a proxy function's own timeout must
/// still cover it (see the template).
pub const MAX_ROUTE_TIMEOUT_SECS: u64 = 120;

/// The routes of `BFF_APIS` and `BFF_UPSTREAM_URL` (at most one of them may be set).
pub fn parse_routes(apis: Option<&str>, upstream_url: Option<&str>) -> Result<Routes, ConfigError> {
    match (apis, upstream_url) {
        (Some(_), Some(_)) => Err(invalid("set together with BFF_UPSTREAM_URL; use one of them".into())),
        (None, None) => Ok(Routes::default()),
        (None, Some(url)) => Ok(Routes::new(vec![ApiRoute {
            path: "/api".into(),
            upstream: upstream_base("BFF_UPSTREAM_URL", url)?,
            token: TokenKind::User,
            target: TokenTarget::default(),
            methods: None,
            timeout: None,
        }])),
        (Some(json), None) => parse_apis(json),
    }
}

/// An upstream base URL: http(s) (plain http on loopback only), no query, fragment or
/// credentials, its path ending in `/` so that joining never drops its last segment.
pub fn upstream_base(name: &'static str, raw: &str) -> Result<Url, ConfigError> {
    check_http_url(name, raw)?;
    let mut url = Url::parse(raw).map_err(|e| ConfigError::Invalid {
        name,
        reason: e.to_string(),
    })?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::Invalid {
            name,
            reason: "must not have a query or fragment".into(),
        });
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn parse_apis(json: &str) -> Result<Routes, ConfigError> {
    let value: Value = serde_json::from_str(json).map_err(|e| invalid(format!("is not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(invalid("must be a JSON array of routes".into()));
    };
    if items.is_empty() {
        return Err(invalid("has no route".into()));
    }
    let mut seen = BTreeSet::new();
    let mut routes = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            return Err(invalid(format!("route #{} is not a JSON object", index + 1)));
        };
        let route = parse_route(index, fields)?;
        if !seen.insert(route.path.clone()) {
            return Err(invalid(format!("route `{}`: `path` appears twice", route.path)));
        }
        routes.push(route);
    }
    Ok(Routes::new(routes))
}

fn parse_route(index: usize, fields: &Map<String, Value>) -> Result<ApiRoute, ConfigError> {
    let path = match fields.get("path") {
        Some(Value::String(path)) => path.clone(),
        Some(_) => return Err(invalid(format!("route #{}: `path` must be a string", index + 1))),
        None => return Err(invalid(format!("route #{}: `path` is required", index + 1))),
    };
    let refuse = |key: &str, reason: &str| invalid(format!("route `{path}`: `{key}` {reason}"));
    check_path(&path).map_err(|reason| refuse("path", reason))?;
    if let Some(key) = fields.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(refuse(key, "is not a known key"));
    }

    let string = |key: &str| -> Result<Option<String>, ConfigError> {
        match fields.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(_) => Err(refuse(key, "must be a non-empty string")),
        }
    };
    let upstream_raw = string("upstream")?.ok_or_else(|| refuse("upstream", "is required"))?;
    let upstream = upstream_base(NAME, &upstream_raw).map_err(|e| match e {
        ConfigError::Invalid { reason, .. } => refuse("upstream", &reason),
        other => other,
    })?;
    let token = match string("token")?.as_deref() {
        None | Some("user") => TokenKind::User,
        Some("user_or_none") => TokenKind::UserOrNone,
        Some("client") => TokenKind::Client,
        Some("none") => TokenKind::None,
        Some(_) => return Err(refuse("token", "must be one of user, user_or_none, client, none")),
    };
    let target = TokenTarget {
        resource: string("resource")?,
        audience: string("audience")?,
        scope: string("scope")?,
    };
    if token == TokenKind::None {
        for (key, value) in [
            ("resource", &target.resource),
            ("audience", &target.audience),
            ("scope", &target.scope),
        ] {
            if value.is_some() {
                return Err(refuse(key, "is not allowed on a route whose token is none"));
            }
        }
    }
    if let Some(resource) = &target.resource {
        // RFC 8707 §2: an absolute URI without a fragment.
        let ok = Url::parse(resource).is_ok_and(|url| url.fragment().is_none());
        if !ok {
            return Err(refuse("resource", "must be an absolute URI without a fragment"));
        }
    }
    let methods = match fields.get("methods") {
        None => None,
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut methods = Vec::with_capacity(items.len());
            for item in items {
                let method = item
                    .as_str()
                    .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()))
                    .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
                    .ok_or_else(|| refuse("methods", "must list upper-case HTTP methods"))?;
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
            Some(methods)
        }
        Some(_) => return Err(refuse("methods", "must be a non-empty array of methods")),
    };
    let timeout = match fields.get("timeout_secs") {
        None => None,
        Some(value) => match value.as_u64() {
            Some(secs @ 1..=MAX_ROUTE_TIMEOUT_SECS) => Some(Duration::from_secs(secs)),
            _ => {
                return Err(refuse(
                    "timeout_secs",
                    &format!("must be a whole number of seconds from 1 to {MAX_ROUTE_TIMEOUT_SECS}"),
                ));
            }
        },
    };
    Ok(ApiRoute {
        path,
        upstream,
        token,
        target,
        methods,
        timeout,
    })
}

/// `/api` or whole segments below it, of unreserved characters only (so that what the
/// operator wrote is exactly what a decoded request path is compared with).
fn check_path(path: &str) -> Result<(), &'static str> {
    let rest = if path == "/api" {
        return Ok(());
    } else {
        path.strip_prefix("/api/").ok_or("must be /api or a path below it")?
    };
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err("must not have empty segments or a trailing slash");
        }
        if segment == "." || segment == ".." || !segment.bytes().all(unreserved) {
            return Err("segments may use only letters, digits and - . _ ~ (no . or .. segment)");
        }
    }
    Ok(())
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid { name: NAME, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> String {
        parse_routes(Some(json), None).expect_err(json).to_string()
    }

    #[test]
    fn the_contract_example_parses() {
        let routes = parse_routes(
            Some(
                r#"[
                {"path": "/api/orders",  "upstream": "https://orders.example.com/v1", "token": "user",
                 "resource": "https://orders.example.com"},
                {"path": "/api/billing", "upstream": "https://billing.example.com",   "token": "user",
                 "audience": "https://billing.example.com", "scope": "billing:read", "methods": ["GET"]},
                {"path": "/api/catalog", "upstream": "https://catalog.example.com",   "token": "user_or_none"},
                {"path": "/api/status",  "upstream": "https://status.example.com",    "token": "none"},
                {"path": "/api/reports", "upstream": "https://reports.example.com",   "token": "client",
                 "scope": "reports:read", "timeout_secs": 30}
            ]"#,
            ),
            None,
        )
        .expect("valid");
        let (orders, rest) = routes.find("/api/orders/7").expect("orders");
        assert_eq!(rest, "7");
        assert_eq!(orders.upstream.as_str(), "https://orders.example.com/v1/");
        assert_eq!(orders.target.resource.as_deref(), Some("https://orders.example.com"));
        let (billing, _) = routes.find("/api/billing").expect("billing");
        assert_eq!(billing.methods, Some(vec![Method::GET]));
        assert_eq!(billing.target.scope.as_deref(), Some("billing:read"));
        assert_eq!(
            routes.find("/api/catalog/x").expect("catalog").0.token,
            TokenKind::UserOrNone
        );
        assert_eq!(routes.find("/api/status").expect("status").0.token, TokenKind::None);
        let (reports, _) = routes.find("/api/reports").expect("reports");
        assert_eq!(
            (reports.token, reports.timeout),
            (TokenKind::Client, Some(Duration::from_secs(30)))
        );
        assert!(routes.find("/api/other").is_none(), "no catch-all was configured");
    }

    #[test]
    fn the_upstream_url_alone_is_one_route_for_all_of_api() {
        let routes = parse_routes(None, Some("http://127.0.0.1:9000/base")).expect("valid");
        let (route, rest) = routes.find("/api/x/y").expect("catch-all");
        assert_eq!(
            (route.path.as_str(), rest, route.token),
            ("/api", "x/y", TokenKind::User)
        );
        assert_eq!(route.upstream.as_str(), "http://127.0.0.1:9000/base/");
        assert!(parse_routes(None, None).expect("none").is_empty());
    }

    #[test]
    fn each_bad_field_stops_start_up_naming_the_route_and_the_key() {
        let cases = [
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "tokn": "user"}]"#,
                "route `/api/a`: `tokn` is not a known key",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example"}, {"path": "/api/a", "upstream": "https://b.example"}]"#,
                "route `/api/a`: `path` appears twice",
            ),
            (
                r#"[{"path": "/other", "upstream": "https://a.example"}]"#,
                "route `/other`: `path` must be /api",
            ),
            (
                r#"[{"path": "/apix", "upstream": "https://a.example"}]"#,
                "route `/apix`: `path`",
            ),
            (
                r#"[{"path": "/api/a/", "upstream": "https://a.example"}]"#,
                "route `/api/a/`: `path`",
            ),
            (
                r#"[{"path": "/api/../x", "upstream": "https://a.example"}]"#,
                "route `/api/../x`: `path`",
            ),
            (
                r#"[{"path": "/api/%61", "upstream": "https://a.example"}]"#,
                "route `/api/%61`: `path`",
            ),
            (r#"[{"upstream": "https://a.example"}]"#, "route #1: `path` is required"),
            (r#"[{"path": "/api/a"}]"#, "route `/api/a`: `upstream` is required"),
            (
                r#"[{"path": "/api/a", "upstream": "http://a.example"}]"#,
                "route `/api/a`: `upstream` http:// is allowed only for loopback",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example/?q=1"}]"#,
                "route `/api/a`: `upstream` must not have a query",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://u:p@a.example"}]"#,
                "route `/api/a`: `upstream` must not contain credentials",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "token": "bearer"}]"#,
                "route `/api/a`: `token` must be one of",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "token": "none", "resource": "https://r"}]"#,
                "route `/api/a`: `resource` is not allowed",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "token": "none", "audience": "x"}]"#,
                "route `/api/a`: `audience` is not allowed",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "token": "none", "scope": "x"}]"#,
                "route `/api/a`: `scope` is not allowed",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "resource": "orders"}]"#,
                "route `/api/a`: `resource` must be an absolute URI",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "methods": ["get"]}]"#,
                "route `/api/a`: `methods` must list upper-case",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "methods": []}]"#,
                "route `/api/a`: `methods` must be a non-empty array",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "timeout_secs": 0}]"#,
                "route `/api/a`: `timeout_secs` must be",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "timeout_secs": "5"}]"#,
                "route `/api/a`: `timeout_secs` must be",
            ),
            (
                r#"[{"path": "/api/a", "upstream": "https://a.example", "scope": 5}]"#,
                "route `/api/a`: `scope` must be a non-empty string",
            ),
            (r#"{"path": "/api/a"}"#, "must be a JSON array"),
            (r#"[]"#, "has no route"),
            (r#"[1]"#, "route #1 is not a JSON object"),
            (r#"[{"path": "/api/a""#, "is not JSON"),
        ];
        for (json, want) in cases {
            let got = error(json);
            assert!(got.starts_with("BFF_APIS is invalid: "), "{json}: {got}");
            assert!(got.contains(want), "{json}: {got} should contain {want}");
        }
        let both = parse_routes(Some("[]"), Some("https://a.example")).expect_err("both");
        assert!(both.to_string().contains("BFF_UPSTREAM_URL"), "{both}");
    }
}
