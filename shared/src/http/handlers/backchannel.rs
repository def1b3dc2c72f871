//! `POST /auth/backchannel-logout`: the provider posts a signed `logout_token`; answers
//! 200 on success and 400 JSON otherwise.

use http::StatusCode;
use lambda_http::{Body, Request, Response};

use super::Reply;
use crate::http::app::App;
use crate::http::error::RequestError;
use crate::http::response::{body_bytes, single_param};
use crate::service::backchannel::{BackchannelError, end_sessions};

/// Handles the provider's back-channel logout request.
pub async fn handle(app: &App, req: &Request) -> Reply {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body_bytes(req.body()))
        .into_owned()
        .collect();
    let token = single_param(&form, "logout_token")
        .map_err(RequestError::Invalid)?
        .ok_or(BackchannelError::MissingToken)?;
    end_sessions(&app.deps(), token).await?;
    let mut ok = Response::new(Body::Empty);
    *ok.status_mut() = StatusCode::OK;
    Ok(ok)
}
