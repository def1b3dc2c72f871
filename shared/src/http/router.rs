//! Routing by path, as CloudFront does in AWS, with each route's policy applied once.
//!
//! [`handle`] is the one way into the edge: it reads the request once
//! ([`EdgeRequest`]), lets the route's [`Policy`] answer a preflight or refuse, calls the
//! handler, renders an error in the route's format and adds the response headers.
//! [`route`] adds the access-log line; `bff-local` and the tests call it, the Lambda
//! entry logs around its own origin check.

use std::future::Future;
use std::pin::Pin;

use http::Method;
use lambda_http::{Request, Response};
use tracing::Instrument as _;

use super::access_log;
use super::app::App;
use super::body::ResponseBody;
use super::error::{ErrorAnswer, RequestError};
use super::handlers::{self, Handled};
use super::policy::{Admission, EdgeRequest, ErrorFormat, Guard, Policy};
use super::response::set_cookie;
use crate::platform::{metrics, trace_scope};

/// An endpoint group of the BFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /auth/login`
    Login,
    /// `GET /auth/callback`
    Callback,
    /// `GET /auth/me`
    Me,
    /// `POST /auth/logout`
    Logout,
    /// `POST /auth/backchannel-logout`
    BackchannelLogout,
    /// `/api/*`
    Api,
    /// `GET /healthz` (`bff-local` only)
    Health,
    /// `GET /readyz` (`bff-local` only)
    Ready,
    /// `GET /metrics` (`bff-local` only)
    Metrics,
}

const GET: &[Method] = &[Method::GET];
const GET_HEAD: &[Method] = &[Method::GET, Method::HEAD];
const POST: &[Method] = &[Method::POST];

impl Route {
    /// The route serving `path`, if any.
    pub fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/auth/login" => Self::Login,
            "/auth/callback" => Self::Callback,
            "/auth/me" => Self::Me,
            "/auth/logout" => Self::Logout,
            "/auth/backchannel-logout" => Self::BackchannelLogout,
            p if p == "/api" || p.starts_with("/api/") => Self::Api,
            "/healthz" => Self::Health,
            "/readyz" => Self::Ready,
            "/metrics" => Self::Metrics,
            _ => return None,
        })
    }

    /// The name logs show instead of the path (which may hold personal data).
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Callback => "callback",
            Self::Me => "me",
            Self::Logout => "logout",
            Self::BackchannelLogout => "backchannel_logout",
            Self::Api => "api",
            Self::Health => "healthz",
            Self::Ready => "readyz",
            Self::Metrics => "metrics",
        }
    }

    /// The route's request and response policy.
    pub fn policy(self) -> Policy {
        let auth = Policy {
            methods: Some(GET),
            cors: false,
            guard: Guard::Open,
            no_store: true,
            no_referrer: false,
            errors: ErrorFormat::Json,
        };
        match self {
            // A browser navigation gets a page; a script asking for JSON gets JSON.
            Self::Login => Policy {
                methods: Some(GET_HEAD),
                errors: ErrorFormat::PageForBrowsers,
                ..auth
            },
            // The callback URL carries the code: no page it leads to may see it.
            Self::Callback => Policy {
                no_referrer: true,
                errors: ErrorFormat::Page,
                ..auth
            },
            Self::Me => Policy {
                cors: true,
                guard: Guard::KnownOrigin,
                ..auth
            },
            Self::Logout => Policy {
                methods: Some(POST),
                cors: true,
                guard: Guard::AntiForgery,
                ..auth
            },
            Self::BackchannelLogout => Policy {
                methods: Some(POST),
                ..auth
            },
            // API answers are the upstream's to cache or not.
            Self::Api => Policy {
                methods: None,
                cors: true,
                guard: Guard::AntiForgery,
                no_store: false,
                ..auth
            },
            // Probes: no browser calls them, no cookie matters.
            Self::Health | Self::Ready | Self::Metrics => Policy {
                methods: Some(GET_HEAD),
                ..auth
            },
        }
    }
}

/// The routes one deployment unit serves: one Lambda function, or `bff-local` (all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `/auth/login`
    Login,
    /// `/auth/callback`
    Callback,
    /// `/auth/me` and `/auth/logout`
    Session,
    /// `/api/*`
    Proxy,
    /// `/auth/backchannel-logout`
    Backchannel,
    /// Every route (`bff-local`, the tests), the operator's probes included.
    All,
}

impl Function {
    /// Whether this unit serves `route`. The probes are `bff-local`'s only: in AWS,
    /// Lambda and CloudFront watch the functions.
    pub const fn serves(self, route: Route) -> bool {
        matches!(
            (self, route),
            (Self::All, _)
                | (Self::Login, Route::Login)
                | (Self::Callback, Route::Callback)
                | (Self::Session, Route::Me | Route::Logout)
                | (Self::Proxy, Route::Api)
                | (Self::Backchannel, Route::BackchannelLogout)
        )
    }
}

/// A deployment unit as a type: what a binary serves is then fixed when it is compiled.
/// [`handle`] is instantiated per unit, so a Lambda function's binary links only its own
/// handlers; the others are dead code the optimiser drops.
pub trait Unit: Copy + Send + Sync + 'static {
    /// The routes this unit serves.
    const FUNCTION: Function;
}

/// The deployment units as types, one per [`Function`].
pub mod unit {
    use super::{Function, Unit};

    macro_rules! units {
        ($($name:ident),*) => {$(
            #[doc = concat!("[`Function::", stringify!($name), "`] as a type.")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Unit for $name {
                const FUNCTION: Function = Function::$name;
            }
        )*};
    }

    units!(Login, Callback, Session, Proxy, Backchannel, All);
}

/// Answers `req` as `unit` does: 404 JSON for a path it does not serve. Only the
/// proxy's answers stream; every other body is whole.
pub async fn handle<U: Unit>(app: &App, _unit: U, req: Request) -> Response<ResponseBody> {
    let Some(route) = Route::of(req.uri().path()).filter(|r| U::FUNCTION.serves(*r)) else {
        return ErrorAnswer::from(RequestError::NotFound)
            .to_json()
            .map(ResponseBody::from);
    };
    let policy = route.policy();
    let edge = EdgeRequest::read(&req, &app.cookies);
    let handled = match policy.admit(req.method(), &edge, &app.config) {
        Ok(Admission::Answer(response)) => return response.map(ResponseBody::from),
        Err(refused) => Handled::with_cookie(Err(refused), None),
        Ok(Admission::Continue) => dispatch::<U>(app, route, &req, &edge).await,
    };
    let mut response = handled
        .reply
        .unwrap_or_else(|error| policy.error_answer(&error, &edge).map(ResponseBody::from));
    if let Some(cookie) = handled.set_cookie {
        set_cookie(&mut response, &cookie);
    }
    policy.finish(response, &edge, &app.config)
}

/// A handler's answer to come, on the heap.
type Pending<'a> = Pin<Box<dyn Future<Output = Handled> + Send + 'a>>;

/// Starts `route`'s handler. This is a plain function, not an `async` one: each arm's guard
/// is a constant of `U`, so an arm for a route the unit does not serve is removed at
/// compile time together with its handler (an `async` match would keep every arm's await
/// state, and with it every handler, in each binary). On the heap, the handler's future
/// also stays out of the wrappers around it (task spawn, trace scope, metrics scope,
/// span), which then move a few hundred bytes instead of the largest handler's state.
fn dispatch<'a, U: Unit>(app: &'a App, route: Route, req: &'a Request, edge: &'a EdgeRequest) -> Pending<'a> {
    let serves = |route| U::FUNCTION.serves(route);
    match route {
        Route::Login if serves(Route::Login) => {
            Box::pin(async move { handlers::login::handle(app, req, edge).await.into() })
        }
        Route::Callback if serves(Route::Callback) => Box::pin(handlers::callback::handle(app, req, edge)),
        Route::Me if serves(Route::Me) => Box::pin(async move { handlers::session::me(app, edge).await.into() }),
        Route::Logout if serves(Route::Logout) => {
            Box::pin(async move { handlers::session::logout(app, req, edge).await.into() })
        }
        Route::BackchannelLogout if serves(Route::BackchannelLogout) => {
            Box::pin(async move { handlers::backchannel::handle(app, req).await.into() })
        }
        Route::Api if serves(Route::Api) => {
            Box::pin(async move { handlers::proxy::handle(app, req, edge).await.into() })
        }
        Route::Health if serves(Route::Health) => Box::pin(std::future::ready(handlers::ops::healthz().into())),
        Route::Ready if serves(Route::Ready) => Box::pin(async move { handlers::ops::readyz(app).await.into() }),
        Route::Metrics if serves(Route::Metrics) => Box::pin(std::future::ready(handlers::ops::metrics(app).into())),
        // `handle` passes only served routes.
        _ => Box::pin(std::future::ready(Handled::with_cookie(
            Err(RequestError::NotFound.into()),
            None,
        ))),
    }
}

/// The name of the route serving `path`, as the access log shows it.
pub fn route_name(path: &str) -> &'static str {
    Route::of(path).map_or("other", Route::name)
}

/// Answers `req` on every route and writes its access-log line: the one entry point of
/// `bff-local` and of the integration tests.
pub async fn route(app: &App, mut req: Request) -> Response<ResponseBody> {
    let route = route_name(req.uri().path());
    let started = access_log::Started::new(&mut req, route);
    let trace = access_log::trace_of(&req);
    // On the heap: the wrappers below then move a pointer, not the handler's state.
    let work = Box::pin(trace_scope::within(trace, handle(app, unit::All, req)).instrument(started.span()));
    let (response, invocation) = metrics::measure(&app.metrics, route, work, access_log::answered).await;
    let emf = app
        .emf_lines
        .then_some((&invocation, app.config.metrics_namespace.as_str()));
    started.finish(&response, emf);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_without_their_paths() {
        assert_eq!(route_name("/api/users/alice@example.com"), "api");
        assert_eq!(route_name("/auth/callback"), "callback");
        assert_eq!(route_name("/favicon.ico"), "other");
    }

    #[test]
    fn each_function_serves_only_its_own_routes() {
        assert!(Function::Session.serves(Route::Me) && Function::Session.serves(Route::Logout));
        assert!(!Function::Login.serves(Route::Api));
        assert!(!Function::Proxy.serves(Route::Callback));
        assert!(Function::All.serves(Route::BackchannelLogout));
        // The probes are never a Lambda function's.
        for function in [
            Function::Login,
            Function::Callback,
            Function::Session,
            Function::Proxy,
            Function::Backchannel,
        ] {
            assert!(!function.serves(Route::Health) && !function.serves(Route::Ready));
            assert!(!function.serves(Route::Metrics));
        }
    }

    fn app() -> App {
        let config = crate::platform::config::Config::from_lookup(|name| {
            match name {
                "BFF_ISSUER" => Some("https://id.example.com"),
                "BFF_CLIENT_ID" => Some("client"),
                "BFF_CLIENT_SECRET" => Some("s3cret"),
                "BFF_PUBLIC_URL" => Some("https://app.example.com"),
                "BFF_UPSTREAM_URL" => Some("https://api.example.com"),
                _ => None,
            }
            .map(str::to_owned)
        })
        .expect("valid configuration");
        App::new(config, std::sync::Arc::new(crate::store::memory::MemoryStore::new())).expect("context")
    }

    fn request(method: &str, path: &str) -> Request {
        http::Request::builder()
            .method(method)
            .uri(format!("https://app.example.com{path}"))
            .body(lambda_http::Body::Empty)
            .expect("request")
    }

    #[tokio::test]
    async fn a_unit_answers_404_on_every_route_it_does_not_serve() {
        let app = app();
        let status = |response: Response<ResponseBody>| response.status().as_u16();
        assert_eq!(
            status(handle(&app, unit::Login, request("GET", "/api/orders")).await),
            404
        );
        assert_eq!(
            status(handle(&app, unit::Login, request("GET", "/auth/callback")).await),
            404
        );
        assert_eq!(
            status(handle(&app, unit::Proxy, request("GET", "/auth/login")).await),
            404
        );
        assert_eq!(
            status(handle(&app, unit::Session, request("POST", "/auth/backchannel-logout")).await),
            404
        );
        assert_eq!(
            status(handle(&app, unit::Callback, request("GET", "/auth/me")).await),
            404
        );
        assert_eq!(
            status(handle(&app, unit::Backchannel, request("GET", "/healthz")).await),
            404
        );
        // The same paths on the units that serve them are not 404.
        assert_eq!(status(handle(&app, unit::All, request("GET", "/healthz")).await), 200);
        assert_ne!(
            status(handle(&app, unit::Session, request("GET", "/auth/me")).await),
            404
        );
        assert_ne!(
            status(handle(&app, unit::Login, request("GET", "/auth/callback?x=1")).await),
            200
        );
    }
}
