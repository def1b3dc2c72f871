//! `GET /auth/login`: validates `returnTo` and the login options (any other parameter is
//! refused with 400), starts the grant, adds the login's `state` to this browser's
//! transaction cookie and sends the browser to the provider.

use lambda_http::Request;

use super::Reply;
use crate::domain::login_options::LoginOptions;
use crate::domain::return_to::validate_return_to;
use crate::http::app::App;
use crate::http::cookies::with_state;
use crate::http::error::{RequestError, Unredirectable};
use crate::http::policy::EdgeRequest;
use crate::http::response::{query_pairs, redirect, set_cookie, single_param};
use crate::platform::metrics::{self, Event};
use crate::service::login;

/// Handles `GET /auth/login?returnTo=...&prompt=...`.
pub async fn handle(app: &App, req: &Request, edge: &EdgeRequest) -> Reply {
    let query = query_pairs(req);
    let return_to = single_param(&query, "returnTo").map_err(RequestError::Invalid)?;
    let return_to = validate_return_to(return_to, &app.config.public_origin, &app.config.allowed_origins)?;
    let options = LoginOptions::from_query(&query).map_err(|e| RequestError::Invalid(e.0))?;
    let started = login::start(&app.deps(), return_to, options, edge.session_id()).await?;
    let pending = with_state(edge.pending_states.clone(), started.state);
    let mut response = redirect(&started.location).map_err(|_| Unredirectable::AuthorizationEndpoint)?;
    set_cookie(&mut response, &app.cookies.tx_cookie(&pending));
    metrics::record(Event::LoginStarted);
    Ok(response)
}
