//! API routes: which upstream a path under `/api` goes to, and with which token.
//!
//! A route owns a path prefix of whole segments (`/api/orders` serves `/api/orders` and
//! `/api/orders/7`, never `/api/ordersX`); the longest prefix wins. Prefixes are compared
//! with the request path's segments decoded, so `/api/%6Frders/7` reaches the orders route
//! and not a shorter one that would send the call to another upstream. Pure: parsing the
//! configuration that produces routes is the platform's job.

use std::time::Duration;

use http::Method;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use url::Url;

/// Which token, if any, a route's calls carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// The user's access token; without a session the BFF answers 401.
    User,
    /// The user's access token with a session, no `Authorization` without one.
    UserOrNone,
    /// The BFF's own client-credentials token.
    Client,
    /// Never a token.
    None,
}

/// What a token is for: the parameters of the grant that obtains it. The empty target
/// is the login's own token (whatever `BFF_AUTH_PARAMS` asked for).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenTarget {
    /// RFC 8707 `resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `audience`, for providers that take it (Auth0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl TokenTarget {
    /// Whether this is the login's own token.
    pub fn is_login(&self) -> bool {
        self.resource.is_none() && self.audience.is_none() && self.scope.is_none()
    }

    /// The grant parameters that ask for this target, in a fixed order.
    pub fn grant_params(&self) -> Vec<(&'static str, &str)> {
        [
            ("resource", &self.resource),
            ("audience", &self.audience),
            ("scope", &self.scope),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// One route under `/api`.
#[derive(Debug, Clone)]
pub struct ApiRoute {
    /// The path prefix, `/api` or below, without trailing slash.
    pub path: String,
    /// The upstream base URL; its path ends with `/`.
    pub upstream: Url,
    /// Which token the route's calls carry.
    pub token: TokenKind,
    /// What that token is for.
    pub target: TokenTarget,
    /// The allowed methods; `None` allows every method.
    pub methods: Option<Vec<Method>>,
    /// The upstream timeout; `None` takes the default.
    pub timeout: Option<Duration>,
}

impl ApiRoute {
    /// Whether `method` may be forwarded on this route.
    pub fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|methods| methods.contains(method))
    }

    /// The `Allow` header's value for a refused method.
    pub fn allow_header(&self) -> String {
        self.methods
            .as_ref()
            .map(|methods| methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    }
}

/// The routes of one deployment, longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<ApiRoute>);

impl Routes {
    /// The table of `routes` (prefixes are assumed distinct, as configuration ensures).
    pub fn new(mut routes: Vec<ApiRoute>) -> Self {
        routes.sort_by_key(|route| std::cmp::Reverse(segments(&route.path).len()));
        Self(routes)
    }

    /// Every route, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = &ApiRoute> {
        self.0.iter()
    }

    /// Whether there is no route at all (the process does not serve the proxy).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The distinct RFC 8707 resources that routes obtain user tokens for, in route
    /// order: the authorization request names them, since a refresh grant may only ask
    /// for resources the grant covers (RFC 8707 §2).
    pub fn user_resources(&self) -> Vec<&str> {
        let mut resources: Vec<&str> = Vec::new();
        for route in &self.0 {
            if let (TokenKind::User | TokenKind::UserOrNone, Some(resource)) = (route.token, &route.target.resource)
                && !resources.contains(&resource.as_str())
            {
                resources.push(resource);
            }
        }
        resources
    }

    /// The route serving the raw (still percent-encoded) request `path`, with the raw rest
    /// of the path after its prefix (no leading `/`).
    pub fn find<'p>(&self, path: &'p str) -> Option<(&ApiRoute, &'p str)> {
        let raw: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        self.0.iter().find_map(|route| {
            let prefix = segments(&route.path);
            let matches = raw.len() >= prefix.len()
                && prefix
                    .iter()
                    .zip(&raw)
                    .all(|(want, got)| percent_decode_str(got).decode_utf8().is_ok_and(|got| got == *want));
            matches.then(|| (route, rest_after(path, prefix.len())))
        })
    }
}

/// The segments of a configured prefix (`/api/orders` → `["api", "orders"]`).
fn segments(prefix: &str) -> Vec<&str> {
    prefix.trim_start_matches('/').split('/').collect()
}

/// What follows the first `n` segments of `path` (which starts with `/`), without its
/// leading `/`.
fn rest_after(path: &str, n: usize) -> &str {
    let mut rest = &path[1..];
    for _ in 0..n {
        rest = rest.split_once('/').map_or("", |(_, after)| after);
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, upstream: &str) -> ApiRoute {
        ApiRoute {
            path: path.to_owned(),
            upstream: Url::parse(upstream).expect("url"),
            token: TokenKind::User,
            target: TokenTarget::default(),
            methods: None,
            timeout: None,
        }
    }

    fn table() -> Routes {
        Routes::new(vec![
            route("/api", "https://default.example/"),
            route("/api/orders", "https://orders.example/"),
            route("/api/orders/archive", "https://archive.example/"),
            route("/api/billing", "https://billing.example/"),
        ])
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let routes = table();
        let cases = [
            ("/api", Some(("/api", ""))),
            ("/api/", Some(("/api", ""))),
            ("/api/users/7", Some(("/api", "users/7"))),
            ("/api/orders", Some(("/api/orders", ""))),
            ("/api/orders/", Some(("/api/orders", ""))),
            ("/api/orders/7", Some(("/api/orders", "7"))),
            ("/api/orders/7/lines", Some(("/api/orders", "7/lines"))),
            ("/api/ordersX", Some(("/api", "ordersX"))),
            ("/api/orders-archive", Some(("/api", "orders-archive"))),
            ("/api/orders/archive/2024", Some(("/api/orders/archive", "2024"))),
            ("/api/orders/archived", Some(("/api/orders", "archived"))),
            ("/api/billing/a/b", Some(("/api/billing", "a/b"))),
            ("/api/ORDERS/7", Some(("/api", "ORDERS/7"))),
            ("/apix", None),
            ("/", None),
            ("", None),
            ("/auth/me", None),
        ];
        for (path, want) in cases {
            let got = routes.find(path).map(|(route, rest)| (route.path.as_str(), rest));
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn encoded_prefixes_reach_their_own_route_and_encoded_separators_never_split_one() {
        let routes = table();
        // An encoded letter is still the orders route: never a shorter route's upstream.
        assert_eq!(
            routes.find("/api/%6Frders/7").map(|(r, rest)| (r.path.as_str(), rest)),
            Some(("/api/orders", "7"))
        );
        // An encoded slash is one segment `orders/7`, not the orders route; the catch-all
        // gets it and forwarding's confinement refuses the encoded separator.
        assert_eq!(
            routes.find("/api/orders%2F7").map(|(r, rest)| (r.path.as_str(), rest)),
            Some(("/api", "orders%2F7"))
        );
        assert_eq!(routes.find("/api%2Forders/7").map(|(r, _)| r.path.as_str()), None);
        // Invalid UTF-8 never matches a prefix segment.
        assert_eq!(
            routes.find("/api/%FFrders/7").map(|(r, _)| r.path.as_str()),
            Some("/api")
        );
    }

    #[test]
    fn without_a_catch_all_unmatched_paths_find_nothing() {
        let routes = Routes::new(vec![route("/api/orders", "https://orders.example/")]);
        assert!(routes.find("/api/billing").is_none());
        assert!(routes.find("/api").is_none());
        assert!(routes.find("/api/orders/1").is_some());
    }

    #[test]
    fn the_login_asks_for_every_resource_of_user_routes_once() {
        let with = |path: &str, token, resource: Option<&str>| ApiRoute {
            token,
            target: TokenTarget {
                resource: resource.map(str::to_owned),
                ..TokenTarget::default()
            },
            ..route(path, "https://x.example/")
        };
        let routes = Routes::new(vec![
            with("/api/a", TokenKind::User, Some("https://a.example")),
            with("/api/b", TokenKind::UserOrNone, Some("https://b.example")),
            with("/api/a2", TokenKind::User, Some("https://a.example")),
            with("/api/c", TokenKind::Client, Some("https://c.example")),
            with("/api", TokenKind::User, None),
        ]);
        let mut got = routes.user_resources();
        got.sort_unstable();
        assert_eq!(got, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn methods_limit_a_route_and_name_the_allowed_ones() {
        let mut get_only = route("/api/billing", "https://billing.example/");
        get_only.methods = Some(vec![Method::GET, Method::HEAD]);
        assert!(get_only.allows(&Method::GET));
        assert!(!get_only.allows(&Method::POST));
        assert_eq!(get_only.allow_header(), "GET, HEAD");
        assert!(route("/api", "https://x.example/").allows(&Method::DELETE));
    }

    #[test]
    fn a_target_asks_for_exactly_its_own_parameters() {
        assert!(TokenTarget::default().is_login());
        let target = TokenTarget {
            resource: Some("https://orders.example".into()),
            audience: None,
            scope: Some("orders:read".into()),
        };
        assert!(!target.is_login());
        assert_eq!(
            target.grant_params(),
            vec![("resource", "https://orders.example"), ("scope", "orders:read")]
        );
    }
}
