//! `GET /auth/callback`: the provider's redirect back to the BFF.
//!
//! The `state` must be one of this browser's pending logins (its transaction cookie).
//! The transaction is consumed before anything else, so it can never be used twice,
//! whether this callback succeeds, fails, or reports a provider error; the spent `state`
//! leaves the transaction cookie in every case. Any failure answers an error page (or,
//! with `BFF_ERROR_URL`, a redirect there carrying the error code), creates no session
//! and sets no session cookie; the one exception is a silent login (`prompt=none`) the
//! provider cannot complete without the user, which goes back to its `returnTo` with
//! `error=<code>` (still without a session).

use lambda_http::{Body, Request, Response};

use super::Handled;
use crate::domain::login_options::with_query_param;
use crate::http::access_log;
use crate::http::app::App;
use crate::http::cookies::{holds_state, without_state};
use crate::http::error::{ErrorAnswer, RequestError, Unredirectable};
use crate::http::policy::EdgeRequest;
use crate::http::response::{header_str, query_pairs, redirect, set_cookie, single_param};
use crate::platform::metrics::{self, Event};
use crate::service::callback::{self, CallbackError, provider_reported, silent_failure};

/// Handles the provider's redirect back to the BFF.
pub async fn handle(app: &App, req: &Request, edge: &EdgeRequest) -> Handled {
    let query = query_pairs(req);
    let state = match single_param(&query, "state") {
        Ok(state) => state
            .filter(|s| holds_state(&edge.pending_states, s))
            .map(str::to_owned),
        Err(e) => return Handled::with_cookie(Err(RequestError::Invalid(e).into()), None),
    };
    let user_agent = header_str(req.headers(), "user-agent");
    let reply = finish(app, edge, &query, state.as_deref(), user_agent).await;
    metrics::record(match &reply {
        Ok((_, Outcome::LoggedIn)) => Event::LoginCompleted,
        Ok((_, Outcome::SilentFailure(code))) => Event::LoginFailed(code),
        Err(answer) => Event::LoginFailed(answer.code),
    });
    let reply = reply.map(|(response, _)| response);
    // A team's own page for failed logins: the code only, never the description.
    let reply = match (reply, &app.config.error_url) {
        (Err(answer), Some(error_url)) => {
            tracing::info!(
                error = answer.code,
                "login failed; sending the browser to BFF_ERROR_URL"
            );
            redirect(&with_error_code(error_url, answer.code)).map_err(|_| answer)
        }
        (reply, _) => reply,
    };
    let set_cookie = state.map(|state| app.cookies.tx_cookie(&without_state(&edge.pending_states, &state)));
    Handled::with_cookie(reply, set_cookie)
}

/// `url` with `error=<code>` added to its query (codes are plain ASCII words).
fn with_error_code(url: &str, code: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}error={code}")
}

/// How a callback that answered a redirect ended.
enum Outcome {
    /// A session was created.
    LoggedIn,
    /// A silent login ended with this provider error, sent back to the application.
    SilentFailure(&'static str),
}

async fn finish(
    app: &App,
    edge: &EdgeRequest,
    query: &[(String, String)],
    state: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(Response<Body>, Outcome), ErrorAnswer> {
    let deps = app.deps();
    let param = |name: &str| single_param(query, name).map_err(RequestError::Invalid);
    let tx = match state {
        Some(state) => callback::take_transaction(&deps, state).await?,
        None => None,
    };
    if let Some(error) = param("error")? {
        // A silent login the provider cannot complete without the user goes back to the
        // application with the code (OIDC Core 3.1.2.6), and creates no session.
        if let Some(tx) = &tx
            && let Some(code) = silent_failure(tx, error)
        {
            let location = with_query_param(&tx.return_to, "error", code);
            let response = redirect(&location).map_err(|_| Unredirectable::ReturnTo)?;
            return Ok((response, Outcome::SilentFailure(code)));
        }
        return Err(provider_reported(error, param("error_description")?.unwrap_or("")).into());
    }
    let code = param("code")?.ok_or(CallbackError::MissingCode)?;
    if param("state")?.is_none() {
        return Err(CallbackError::MissingState.into());
    }
    let tx = tx.ok_or(CallbackError::UnknownState)?;
    let done = callback::complete(&deps, tx, code, param("iss")?, edge.session_id(), user_agent).await?;

    let mut response = redirect(&done.return_to).map_err(|_| Unredirectable::ReturnTo)?;
    set_cookie(&mut response, &app.cookies.session_cookie(&done.id));
    Ok((access_log::for_user(response, &done.sub), Outcome::LoggedIn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_code_joins_the_query() {
        assert_eq!(with_error_code("/oops", "invalid_state"), "/oops?error=invalid_state");
        assert_eq!(
            with_error_code("https://app.example.com/x?lang=en", "access_denied"),
            "https://app.example.com/x?lang=en&error=access_denied"
        );
    }
}
