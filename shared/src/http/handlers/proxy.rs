//! `/api/*`: finds the route, checks its method, confines the rest of the path below the
//! route's upstream base, finds the session when the route's token needs one and hands
//! the call to the forwarding service; the upstream's answer goes back as it is (minus
//! the headers the browser must not see), its body streamed through as it arrives.

use bytes::Bytes;
use lambda_http::{Request, Response};

use super::StreamedReply;
use crate::domain::forwarding::upstream_url;
use crate::domain::routes::TokenKind;
use crate::http::access_log;
use crate::http::app::App;
use crate::http::body::{ResponseBody, StreamedRequestBody};
use crate::http::error::RequestError;
use crate::http::policy::EdgeRequest;
use crate::http::response::body_bytes;
use crate::service::SessionError;
use crate::service::forward::{Call, CallBody, Forwarded, forward, forward_with_client_token, forward_without_token};
use crate::service::provider_check::checked_with_provider;

/// Handles every method on `/api/*`.
pub async fn handle(app: &App, req: &Request, edge: &EdgeRequest) -> StreamedReply {
    let routes = &app.config.routes;
    let (route, rest) = routes.find(req.uri().path()).ok_or(if routes.is_empty() {
        RequestError::UpstreamNotConfigured
    } else {
        RequestError::NoRoute
    })?;
    if !route.allows(req.method()) {
        return Err(RequestError::RouteMethodNotAllowed(route.allow_header()).into());
    }
    let upstream = app
        .upstreams
        .get(&route.path)
        .ok_or(RequestError::UpstreamNotConfigured)?;
    // Attached by the access log when the request came in; a fresh trace otherwise.
    let trace = access_log::trace_of(req);
    let call = Call {
        method: req.method().clone(),
        url: upstream_url(&upstream.base, rest, req.uri().query())?,
        headers: req.headers(),
        body: match req
            .extensions()
            .get::<StreamedRequestBody>()
            .and_then(StreamedRequestBody::take)
        {
            Some(streamed) => CallBody::sent_once(streamed),
            None => CallBody::Whole(Bytes::copy_from_slice(body_bytes(req.body()))),
        },
        trace: &trace,
        // The name `router::Route::Api` logs under (the router imports this module).
        route: "api",
    };

    if route.token == TokenKind::None {
        return Ok(browser_response(forward_without_token(upstream, call).await?));
    }
    let Some((key, session)) = app.current_session(edge).await? else {
        if route.token == TokenKind::UserOrNone {
            return Ok(browser_response(forward_without_token(upstream, call).await?));
        }
        return Err(SessionError::LoginRequired.into());
    };
    let sub = session.sub.clone();
    let answer = match route.token {
        // The BFF's own token, lent only to logged-in users of the front end.
        TokenKind::Client => {
            checked_with_provider(&app.deps(), &key, session).await?;
            forward_with_client_token(&app.deps(), upstream, &route.target, call).await?
        }
        _ => forward(&app.deps(), upstream, &key, session, &route.target, call).await?,
    };
    Ok(access_log::for_user(browser_response(answer), &sub))
}

/// The browser's response for an upstream answer: status and headers now, the body as
/// the upstream sends it.
fn browser_response(answer: Forwarded) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Stream(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}
