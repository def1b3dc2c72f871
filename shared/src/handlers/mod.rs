//! One module per endpoint group; each exposes `handle(&App, Request) -> Response`.
//!
//! Handlers never return `Err`: every expected failure is an answer with its status
//! (an `Err` would become a Lambda invocation error and a useless 502 at the edge).

pub mod backchannel;
pub mod callback;
pub mod login;
pub mod proxy;
pub mod session;

use lambda_http::{Body, Response};

use crate::app::App;
use crate::errors::ApiError;
use crate::session::{is_live, session_key, slid_idle_expiry, touch_due};
use crate::store::{SessionRecord, StoreError, StoreKey};

/// The request's live session: `None` when there is no cookie, an id the BFF never
/// issued, or an expired session (which is then deleted). Slides the idle expiry when
/// due, at most once per fraction of the idle window.
pub(crate) async fn current_session(
    app: &App,
    headers: &http::HeaderMap,
) -> Result<Option<(StoreKey, SessionRecord)>, ApiError> {
    let Some(id) = app.cookies.session_id(headers) else {
        return Ok(None);
    };
    let key = session_key(&id);
    let now = app.clock.now();
    let Some(mut session) = app.store.get_session(&key, now).await? else {
        return Ok(None);
    };
    if !is_live(&session, now) {
        if let Err(e) = app.store.delete_session(&key).await {
            tracing::warn!(error = %e, "could not delete an expired session");
        }
        return Ok(None);
    }
    // No slide while a refresh lease is held: the refresher's write would conflict.
    let refreshing = session
        .refresh_lease
        .as_ref()
        .is_some_and(|l| l.is_held(app.clock.now_ms()));
    if !refreshing && touch_due(&session, now, app.config.session_idle_secs) {
        let mut touched = session.clone();
        touched.idle_expires_at = slid_idle_expiry(&session, now, app.config.session_idle_secs);
        touched.version += 1;
        match app.store.update_session(&key, &touched, session.version).await {
            Ok(()) => session = touched,
            // Someone else updated it meanwhile (a refresh, another touch): theirs stands.
            Err(StoreError::Conflict) => {}
            Err(e) => tracing::warn!(error = %e, "could not slide the idle expiry"),
        }
    }
    Ok(Some((key, session)))
}

/// The JSON answer for `result`.
pub(crate) fn json_or_error(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(|e| e.to_json())
}
