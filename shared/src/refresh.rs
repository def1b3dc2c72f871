//! Access-token refresh, single-flight across every instance.
//!
//! In AWS many proxy instances serve one user at once, and providers rotate refresh
//! tokens: a second use of a spent refresh token ends the user's grant. So exactly one
//! caller refreshes, coordinated through the store, not process memory: it takes a
//! [`RefreshLease`] with a version-conditional write, refreshes, and writes the new access
//! and refresh tokens together while releasing the lease. Everyone else uses the old
//! token while it is still valid, or waits briefly and re-reads. A lease expires on its
//! own, so a holder that crashed mid-refresh blocks the others for at most [`LEASE_MS`].
//! This module never logs a token.

use std::time::{Duration, Instant};

use crate::app::App;
use crate::errors::ApiError;
use crate::oidc::{OidcError, PROVIDER_TIMEOUT};
use crate::secret::{AccessToken, random_token};
use crate::session::refresh_due;
use crate::store::{RefreshLease, SessionRecord, StoreError, StoreKey};

/// How long a refresh lease holds: one provider call and the write after it.
pub const LEASE_MS: i64 = PROVIDER_TIMEOUT.as_millis() as i64 + 2_000;
/// How often a waiting caller re-reads the session.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// Attempts at the final write when other updates (idle sliding) interleave.
const WRITE_ATTEMPTS: usize = 3;

/// The access token to send for `session`: the stored one, or a refreshed one when it is
/// due or when `rejected` (the token the upstream just refused) is still the stored one.
pub async fn usable_access_token(
    app: &App,
    key: &StoreKey,
    mut session: SessionRecord,
    rejected: Option<&AccessToken>,
) -> Result<AccessToken, ApiError> {
    let give_up = Instant::now() + Duration::from_millis(LEASE_MS as u64) + Duration::from_secs(2);
    loop {
        let now_ms = app.clock.now_ms();
        let now = now_ms / 1000;
        let was_rejected = rejected.is_some_and(|r| *r == session.access_token);
        if !was_rejected && !refresh_due(&session, now) {
            return Ok(session.access_token);
        }
        // A token the upstream refused is never "still valid", whatever its expiry says.
        let still_valid = !was_rejected && session.access_expires_at.is_some_and(|exp| now < exp);
        if session.refresh_token.is_none() {
            if still_valid {
                return Ok(session.access_token);
            }
            end_session(app, key).await;
            return Err(ApiError::session_expired());
        }

        if session.refresh_lease.as_ref().is_some_and(|l| l.is_held(now_ms)) {
            // Someone else is refreshing.
            if still_valid {
                return Ok(session.access_token);
            }
            if Instant::now() >= give_up {
                return Err(ApiError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "refresh_in_progress",
                    "the session is being refreshed; try again",
                ));
            }
            tokio::time::sleep(WAIT_POLL).await;
            session = reload(app, key).await?;
            continue;
        }

        let lease = RefreshLease {
            owner: random_token(16),
            until_ms: now_ms + LEASE_MS,
        };
        let mut leased = session.clone();
        leased.refresh_lease = Some(lease.clone());
        leased.version = session.version + 1;
        match app.store.update_session(key, &leased, session.version).await {
            Ok(()) => return refresh_under_lease(app, key, leased, &lease, still_valid).await,
            // Another caller changed the session first (took the lease, or refreshed): look again.
            Err(StoreError::Conflict) => session = reload(app, key).await?,
            Err(e) => return Err(e.into()),
        }
    }
}

async fn reload(app: &App, key: &StoreKey) -> Result<SessionRecord, ApiError> {
    app.store
        .get_session(key, app.clock.now())
        .await?
        .ok_or_else(ApiError::session_expired)
}

async fn refresh_under_lease(
    app: &App,
    key: &StoreKey,
    leased: SessionRecord,
    lease: &RefreshLease,
    still_valid: bool,
) -> Result<AccessToken, ApiError> {
    let Some(refresh_token) = leased.refresh_token.clone() else {
        return Err(ApiError::session_expired());
    };
    match app.oidc.refresh(&refresh_token).await {
        Ok(tokens) => {
            let now = app.clock.now();
            let mut claims = None;
            if let Some(id_token) = tokens.id_token {
                // A refreshed ID token is kept only if it validates and names the same user.
                match app.oidc.verify_id_token(&id_token, None, now).await {
                    Ok(verified) if verified.sub == leased.sub => claims = Some((verified.claims, id_token)),
                    Ok(_) => tracing::warn!("refreshed ID token names another subject; ignored"),
                    Err(e) => tracing::warn!(error = %e, "refreshed ID token failed validation; ignored"),
                }
            }
            let access_token = tokens.access_token.clone();
            let apply = |current: &SessionRecord| {
                let mut next = current.clone();
                next.access_token = tokens.access_token.clone();
                next.access_issued_at = now;
                next.access_expires_at = tokens.expires_in.map(|secs| now.saturating_add(secs));
                // Rotation: the new refresh token replaces the old in the same write.
                if let Some(rotated) = &tokens.refresh_token {
                    next.refresh_token = Some(rotated.clone());
                }
                if let Some((new_claims, id_token)) = &claims {
                    next.claims = new_claims.clone();
                    next.id_token = id_token.clone();
                }
                next.refresh_lease = None;
                next.version = current.version + 1;
                next
            };
            let mut current = leased;
            for _ in 0..WRITE_ATTEMPTS {
                match app.store.update_session(key, &apply(&current), current.version).await {
                    Ok(()) => return Ok(access_token),
                    Err(StoreError::Conflict) => {
                        // An idle-expiry slide interleaved; keep our tokens on top of it, as
                        // long as the lease is still ours.
                        match app.store.get_session(key, app.clock.now()).await? {
                            Some(fresh) if fresh.refresh_lease.as_ref() == Some(lease) => current = fresh,
                            _ => {
                                tracing::warn!("refresh lease lost before the tokens were saved");
                                return Ok(access_token);
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            tracing::warn!("could not save refreshed tokens after retries");
            Ok(access_token)
        }
        Err(e) if e.is_invalid_grant() => {
            // The grant is gone at the provider (revoked, expired, or a rotated token reused).
            end_session(app, key).await;
            Err(ApiError::session_expired())
        }
        Err(e) => {
            let old_token = leased.access_token.clone();
            release_lease(app, key, leased).await;
            if still_valid {
                // The provider is down: the old token serves until it really expires.
                tracing::warn!(error = %e, "refresh failed; using the still-valid access token");
                Ok(old_token)
            } else {
                Err(refresh_failure(e))
            }
        }
    }
}

async fn release_lease(app: &App, key: &StoreKey, leased: SessionRecord) {
    let mut released = leased.clone();
    released.refresh_lease = None;
    released.version = leased.version + 1;
    if let Err(e) = app.store.update_session(key, &released, leased.version).await {
        tracing::warn!(error = %e, "could not release the refresh lease; it expires on its own");
    }
}

fn refresh_failure(e: OidcError) -> ApiError {
    match ApiError::from(e) {
        // A refresh is never the browser's fault: a provider 4xx other than invalid_grant
        // is a provider problem.
        err if err.status.is_client_error() => ApiError::new(
            http::StatusCode::BAD_GATEWAY,
            "provider_error",
            "the identity provider refused the refresh",
        ),
        err => err,
    }
}

/// Deletes a session that can no longer be used.
pub async fn end_session(app: &App, key: &StoreKey) {
    if let Err(e) = app.store.delete_session(key).await {
        tracing::warn!(error = %e, "could not delete an ended session");
    }
}
