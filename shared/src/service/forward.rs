//! Forwarding an API call with the user's access token, refreshing it first when due.
//!
//! When the upstream answers 401 to a token the BFF believed valid, the token is
//! refreshed once and the call retried once; the second answer stands, so this never
//! loops. Such a forced refresh happens at most once per session in
//! [`FORCED_REFRESH_INTERVAL_SECS`](crate::domain::session::FORCED_REFRESH_INTERVAL_SECS):
//! within it the upstream's 401 goes to the browser as it is, so a stream of upstream 401s
//! never becomes a stream of token requests. A call is replayed only when its body is
//! held whole (Lambda delivers every body whole; `bff-local` keeps small ones): a body
//! streamed from the browser is sent once, so its refused call is not retried, though the
//! token is still renewed for the next call. Answers are never held: the refused answer's
//! body is dropped unread, and the one that stands streams to the browser.
//!
//! A DPoP-bound token (RFC 9449) goes as `Authorization: DPoP <token>` with a fresh proof
//! of the session's key (`htm`, `htu` the URL called without query, `ath`, `jti`, the
//! upstream's last nonce); a 401 asking `use_dpop_nonce` with a `DPoP-Nonce` gets one
//! retry with that nonce. A Bearer token always goes as Bearer, whatever the session's
//! key: each token is sent as its `token_type` said.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use super::refresh::{RefreshError, Refresher};
use super::{Deps, SessionError};
use crate::domain::forwarding::{anonymous_request_headers, dpop_request_headers, upstream_request_headers};
use crate::domain::routes::TokenTarget;
use crate::domain::secret::AccessToken;
use crate::domain::session::{SessionRecord, TokenType};
use crate::domain::trace::TraceContext;
use crate::oidc::OidcError;
use crate::platform::dpop::{DpopKey, asks_for_nonce, unix_now};
use crate::platform::metrics::{self, Event};
use crate::store::{StoreError, StoreKey};
use crate::upstream::{RequestBody, Upstream, UpstreamAnswer, UpstreamError};

/// The upstream's answer, as the browser may see it: status and filtered headers, and
/// the body still streaming from the upstream.
pub type Forwarded = UpstreamAnswer;

/// Why a call was not forwarded, or its answer not returned.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The session has ended.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// No usable access token.
    #[error(transparent)]
    Refresh(#[from] RefreshError),
    /// The upstream failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One call to forward: everything from the browser's request that the upstream gets.
pub struct Call<'a> {
    /// The method.
    pub method: Method,
    /// The upstream URL (already confined below the base).
    pub url: Url,
    /// The browser's headers (filtered here before they leave).
    pub headers: &'a HeaderMap,
    /// The body, byte for byte.
    pub body: CallBody,
    /// The BFF's span in the browser's trace (or a new one).
    pub trace: &'a TraceContext,
    /// The route's name, for the metrics.
    pub route: &'static str,
}

/// The body of a call to forward.
pub enum CallBody {
    /// Held whole: the call can be sent again (after a refresh, or with a DPoP nonce).
    Whole(Bytes),
    /// Still arriving from the browser: sent once, as it comes.
    Streamed(std::sync::Mutex<Option<RequestBody>>),
}

impl CallBody {
    /// A body that can be sent once only (one streaming from the browser).
    pub fn sent_once(body: RequestBody) -> Self {
        Self::Streamed(std::sync::Mutex::new(Some(body)))
    }

    /// Whether the call can be sent again.
    fn replayable(&self) -> bool {
        matches!(self, Self::Whole(_))
    }

    /// The body for one sending; a streamed one only the first time.
    fn take(&self) -> Result<RequestBody, UpstreamError> {
        match self {
            Self::Whole(bytes) => Ok(RequestBody::Whole(bytes.clone())),
            Self::Streamed(once) => once
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| UpstreamError::RequestBodyBrokeOff("the body was already sent".into())),
        }
    }
}

/// Sends `call` with the session's `(key, session)` access token for `target` (the
/// login's own for the empty target).
pub async fn forward(
    deps: &Deps<'_>,
    upstream: &Upstream,
    key: &StoreKey,
    session: SessionRecord,
    target: &TokenTarget,
    call: Call<'_>,
) -> Result<Forwarded, ForwardError> {
    let refresher = Refresher::new(deps.store, deps.oidc, deps.clock)
        .checking_provider_every(deps.config.provider_session_check_secs);
    // The key is the session's for its whole life: refreshes keep it. Parsed once per
    // process and session, not on every call.
    let dpop = match &session.dpop_key {
        Some(secret) => Some(
            deps.dpop_keys
                .key_for(key.as_str(), secret)
                .map_err(|e| RefreshError::Provider(OidcError::Dpop(e.to_string())))?,
        ),
        None => None,
    };
    let (token, token_type) = refresher.usable_typed_token_for(key, session, target, None).await?;
    let send = |token: AccessToken, token_type: TokenType| {
        let presented = match token_type {
            TokenType::Bearer => Presented::Bearer(token),
            TokenType::DPoP => match &dpop {
                Some(key) => Presented::Dpop(token, key),
                // A DPoP token without its key cannot be used, and is never sent as Bearer.
                None => Presented::Unusable,
            },
        };
        send_presented(upstream, &call, presented)
    };
    let answer = send(token.clone(), token_type).await?;
    if answer.status != StatusCode::UNAUTHORIZED {
        return Ok(answer);
    }
    // The upstream refused a token we believed valid (revoked, or clocks disagree). Rare,
    // so its work is on the heap and every other call's future stays small.
    Box::pin(async {
        let session = deps
            .store
            .get_session(key, deps.clock.now())
            .await?
            .ok_or(SessionError::Expired)?;
        if session.refresh_token.is_some() {
            // The same token back means the refresh is throttled: the upstream's 401 stands.
            let (retry_token, retry_type) = refresher
                .usable_typed_token_for(key, session, target, Some(&token))
                .await?;
            // A streamed body is gone: the 401 stands, and the next call has the new token.
            if retry_token != token && call.body.replayable() {
                return send(retry_token, retry_type).await;
            }
        }
        Ok(answer)
    })
    .await
}

/// Sends `call` without any token, for routes whose token kind says so (or a
/// `user_or_none` route called without a session).
pub async fn forward_without_token(upstream: &Upstream, call: Call<'_>) -> Result<Forwarded, ForwardError> {
    let answer = send(upstream, &call, None).await?;
    Ok(answer)
}

/// Sends `call` with the BFF's own client-credentials token for `target`; an upstream
/// 401 renews a token that is not brand new and retries once.
pub async fn forward_with_client_token(
    deps: &Deps<'_>,
    upstream: &Upstream,
    target: &TokenTarget,
    call: Call<'_>,
) -> Result<Forwarded, ForwardError> {
    let token_for = |rejected| {
        deps.client_tokens
            .token(deps.store, deps.oidc, deps.clock, target, rejected)
    };
    let token = token_for(None).await?;
    let mut answer = send(upstream, &call, Some(token.clone())).await?;
    if answer.status == StatusCode::UNAUTHORIZED {
        let retry_token = token_for(Some(&token)).await?;
        if retry_token != token && call.body.replayable() {
            answer = send(upstream, &call, Some(retry_token)).await?;
        }
    }
    Ok(answer)
}

/// How one call presents its token.
enum Presented<'k> {
    /// `Authorization: Bearer`.
    Bearer(AccessToken),
    /// `Authorization: DPoP` with a proof of the key.
    Dpop(AccessToken, &'k DpopKey),
    /// A DPoP-bound token whose key is gone: not sent at all.
    Unusable,
}

/// One upstream call of `call` presenting its token as `presented`; a DPoP call whose
/// 401 asks for the upstream's nonce is sent once more with it.
async fn send_presented(
    upstream: &Upstream,
    call: &Call<'_>,
    presented: Presented<'_>,
) -> Result<UpstreamAnswer, ForwardError> {
    match presented {
        Presented::Bearer(token) => Ok(send(upstream, call, Some(token)).await?),
        Presented::Unusable => Err(RefreshError::SessionEnded.into()),
        Presented::Dpop(token, key) => {
            let answer = send_dpop(upstream, call, &token, key).await?;
            let fresh_nonce = upstream.dpop_nonces.remember(&call.url, &answer.headers);
            if answer.status == StatusCode::UNAUTHORIZED
                && fresh_nonce
                && asks_for_nonce(&answer.headers)
                && call.body.replayable()
            {
                // The refused answer's body is dropped unread; the request body is whole.
                return send_dpop(upstream, call, &token, key).await;
            }
            Ok(answer)
        }
    }
}

/// One DPoP call: the token as `Authorization: DPoP` and a fresh proof for this URL.
async fn send_dpop(
    upstream: &Upstream,
    call: &Call<'_>,
    token: &AccessToken,
    key: &DpopKey,
) -> Result<UpstreamAnswer, ForwardError> {
    let nonce = upstream.dpop_nonces.get(&call.url);
    let proof = key
        .proof(
            call.method.as_str(),
            &call.url,
            unix_now(),
            nonce.as_deref(),
            Some(token),
        )
        .map_err(|e| RefreshError::Provider(OidcError::Dpop(e.to_string())))?;
    let headers = dpop_request_headers(call.headers, token, &proof, call.trace);
    Ok(timed(upstream, call, headers).await?)
}

/// One upstream call of `call` with `token` (or none), timed and counted.
async fn send(
    upstream: &Upstream,
    call: &Call<'_>,
    token: Option<AccessToken>,
) -> Result<UpstreamAnswer, UpstreamError> {
    let headers = match &token {
        Some(token) => upstream_request_headers(call.headers, token, call.trace),
        None => anonymous_request_headers(call.headers, call.trace),
    };
    timed(upstream, call, headers).await
}

/// Sends `call` with `headers`, timed and counted.
async fn timed(upstream: &Upstream, call: &Call<'_>, headers: HeaderMap) -> Result<UpstreamAnswer, UpstreamError> {
    let started = Instant::now();
    let answer = upstream
        .forward(call.method.clone(), call.url.clone(), headers, call.body.take()?)
        .await;
    metrics::upstream_latency(call.route, started.elapsed().as_secs_f64() * 1000.0);
    metrics::record(match &answer {
        Ok(answer) => Event::UpstreamAnswer {
            route: call.route,
            status: answer.status.as_u16(),
        },
        Err(_) => Event::UpstreamFailed { route: call.route },
    });
    answer
}
