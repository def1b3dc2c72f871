//! Access-token refresh, single-flight across every instance.
//!
//! In AWS many proxy instances serve one user at once, and providers rotate refresh
//! tokens: a second use of a spent refresh token ends the user's grant. So exactly one
//! caller refreshes, coordinated through the store, not process memory: it takes a
//! [`RefreshLease`] with a version-conditional write, refreshes, and writes the new access
//! and refresh tokens together while releasing the lease. Everyone else uses the old
//! token while it is still valid, or waits briefly and re-reads. A lease expires on its
//! own, so a holder that crashed mid-refresh blocks the others for at most [`LEASE_MS`].
//!
//! The state machine is generic over its ports (the session store, the provider's
//! refresh grant and the clock), so every branch is unit-tested with in-memory fakes.
//! This module never logs a token.

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::domain::clock::Clock;
use crate::domain::routes::TokenTarget;
use crate::domain::secret::{AccessToken, DpopKeySecret, IdToken, RefreshToken, random_token};
use crate::domain::session::{
    HeldToken, RefreshLease, SessionRecord, TokenType, forced_refresh_of_allowed, refresh_wanted,
};
use crate::oidc::{Oidc, OidcError, PROVIDER_TIMEOUT, TokenSet, VerifiedClaims};
use crate::platform::dpop::DpopKey;
use crate::platform::logging::user_hash;
use crate::platform::metrics::{self, EndReason, Event, RefreshOutcome};
use crate::store::{SessionStore, StoreError, StoreKey};

/// Time kept on the lease after the grant for writing its tokens (with retries).
const WRITE_BUDGET_MS: i64 = 6_000;
/// How long a refresh lease holds: one provider call (bounded by the provider timeout and
/// by the lease itself) and the write after it. Discovery and keys are ready before it.
pub const LEASE_MS: i64 = PROVIDER_TIMEOUT.as_millis() as i64 + WRITE_BUDGET_MS;
/// How often a waiting caller re-reads the session.
pub const WAIT_POLL: Duration = Duration::from_millis(100);
/// How long past a lease's own length a caller waits for another holder before it gives
/// up (the whole wait: [`LEASE_MS`] plus this).
pub const WAIT_BEYOND_LEASE: Duration = Duration::from_secs(2);
/// Attempts at the final write when other updates (idle sliding) interleave.
pub const WRITE_ATTEMPTS: usize = 3;
/// First and longest pause between retries of the final write after a store failure.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(100);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(1);
/// The final write gives up this long before the lease lapses, so no other instance can
/// take the lease while a write of ours may still land.
pub const WRITE_MARGIN_MS: i64 = 500;

/// Why no usable access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The session is gone or can no longer be refreshed (`invalid_grant`, no refresh
    /// token and an expired access token): the user must log in again.
    #[error("the session has ended")]
    SessionEnded,
    /// Another instance holds the lease and did not finish in time.
    #[error("a refresh is in progress elsewhere")]
    InProgress,
    /// The provider failed (down, timed out, or refused for another reason than
    /// `invalid_grant`).
    #[error("refresh failed at the provider: {0}")]
    Provider(OidcError),
    /// The provider would not issue a token for an API route's target
    /// (`invalid_target`, `invalid_scope`, ...), or the session has no refresh token to
    /// ask with; the session and its other tokens stay.
    #[error("the provider refused the API route's token: {error}")]
    TargetRefused {
        /// The provider's OAuth error code (or why it could not be asked).
        error: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The provider as the refresh needs it: the refresh grant, and validation of the ID
/// token it may return.
#[async_trait]
pub trait RefreshGrant: Send + Sync {
    /// Makes ready what the grant and the validation of its answer need (discovery, the
    /// keys), so none of it happens under the lease.
    async fn prepare(&self) -> Result<(), OidcError>;

    /// Uses `refresh_token` for `target`'s access token, proving possession of the
    /// session's DPoP key `dpop` when it has one; the answer may rotate it.
    async fn refresh(
        &self,
        refresh_token: &RefreshToken,
        target: &TokenTarget,
        dpop: Option<&DpopKeySecret>,
    ) -> Result<TokenSet, OidcError>;

    /// Validates an ID token returned by the refresh grant (no nonce) at `now`.
    async fn verify_refreshed_id_token(&self, id_token: &IdToken, now: i64) -> Result<VerifiedClaims, OidcError>;
}

#[async_trait]
impl RefreshGrant for Oidc {
    async fn prepare(&self) -> Result<(), OidcError> {
        self.metadata().await?;
        // Best effort: without keys now, the refreshed ID token's check fetches them later.
        if let Err(e) = self.jwks(false).await {
            tracing::warn!(error = %e, "JWKS not ready before a refresh");
        }
        Ok(())
    }

    async fn refresh(
        &self,
        refresh_token: &RefreshToken,
        target: &TokenTarget,
        dpop: Option<&DpopKeySecret>,
    ) -> Result<TokenSet, OidcError> {
        let key = match dpop {
            Some(secret) => Some(DpopKey::from_secret(secret).map_err(|e| OidcError::Dpop(e.to_string()))?),
            None => None,
        };
        Oidc::refresh(self, refresh_token, target, key.as_ref()).await
    }

    async fn verify_refreshed_id_token(&self, id_token: &IdToken, now: i64) -> Result<VerifiedClaims, OidcError> {
        self.verify_id_token(id_token, None, now).await
    }
}

/// The refresh service over its ports.
pub struct Refresher<'a, S: ?Sized, P: ?Sized> {
    store: &'a S,
    provider: &'a P,
    clock: &'a dyn Clock,
    // `BFF_PROVIDER_SESSION_CHECK_SECS`: see `refresh_wanted`.
    provider_check: Option<i64>,
}

impl<'a, S, P> Refresher<'a, S, P>
where
    S: SessionStore + ?Sized,
    P: RefreshGrant + ?Sized,
{
    /// A refresher using `store` for sessions and leases, `provider` for the grant.
    pub fn new(store: &'a S, provider: &'a P, clock: &'a dyn Clock) -> Self {
        Self {
            store,
            provider,
            clock,
            provider_check: None,
        }
    }

    /// Also refreshes a session's token every `secs` seconds, so the provider is asked
    /// whether the user's grant still stands (`BFF_PROVIDER_SESSION_CHECK_SECS`).
    pub fn checking_provider_every(self, secs: Option<i64>) -> Self {
        Self {
            provider_check: secs,
            ..self
        }
    }

    /// The access token to send for `session`: the stored one, or a refreshed one when
    /// it is due or when `rejected` (the token the upstream just refused) is still the
    /// stored one and no refresh is throttled ([`forced_refresh_allowed`]): a throttled
    /// refusal answers the stored token, the one refused.
    pub async fn usable_access_token(
        &self,
        key: &StoreKey,
        session: SessionRecord,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, RefreshError> {
        self.usable_token_for(key, session, &TokenTarget::default(), rejected)
            .await
    }

    /// Like [`Self::usable_access_token`], for `target`'s token: obtained with the refresh
    /// grant when the session holds none yet. One lease per session covers all its
    /// tokens, since every grant may rotate the one refresh token they share.
    pub async fn usable_token_for(
        &self,
        key: &StoreKey,
        session: SessionRecord,
        target: &TokenTarget,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, RefreshError> {
        self.usable_typed_token_for(key, session, target, rejected)
            .await
            .map(|(token, _)| token)
    }

    /// [`Self::usable_token_for`], with the token's type: how it must be presented.
    pub async fn usable_typed_token_for(
        &self,
        key: &StoreKey,
        session: SessionRecord,
        target: &TokenTarget,
        rejected: Option<&AccessToken>,
    ) -> Result<(AccessToken, TokenType), RefreshError> {
        // Nearly every call: the held token serves. The rest (leases, waits, grants) is on
        // the heap, so the futures of every caller stay a pointer's size instead of
        // carrying the refresh's whole state, which each call would otherwise move around.
        if let Some(serving) = self.serving_token(&session, target, rejected, self.clock.now()) {
            return Ok(serving);
        }
        Box::pin(self.refreshed_token_for(key, session, target, rejected)).await
    }

    /// The held token for `target` when it may be sent as it is at `now`: present, not
    /// the one just `rejected` (unless a forced refresh is throttled), and not due.
    fn serving_token(
        &self,
        session: &SessionRecord,
        target: &TokenTarget,
        rejected: Option<&AccessToken>,
        now: i64,
    ) -> Option<(AccessToken, TokenType)> {
        let held = session.token_for(target)?;
        (!refused_and_renewable(session, &held, rejected, now)
            && !refresh_wanted(session, &held, self.provider_check, now))
        .then_some((held.access_token, held.token_type))
    }

    /// [`Self::usable_typed_token_for`] when the held token does not serve as it is.
    async fn refreshed_token_for(
        &self,
        key: &StoreKey,
        mut session: SessionRecord,
        target: &TokenTarget,
        rejected: Option<&AccessToken>,
    ) -> Result<(AccessToken, TokenType), RefreshError> {
        let give_up = Instant::now() + Duration::from_millis(LEASE_MS as u64) + WAIT_BEYOND_LEASE;
        let mut prepared = false;
        let mut waited = false;
        loop {
            let now_ms = self.clock.now_ms();
            let now = now_ms / 1000;
            if let Some(serving) = self.serving_token(&session, target, rejected, now) {
                if waited {
                    metrics::record(Event::Refresh(RefreshOutcome::Waited));
                    tracing::info!(
                        reason = "waited",
                        sub_hash = %user_hash(&session.sub),
                        "token refreshed by another instance"
                    );
                }
                return Ok(serving);
            }
            let held = session.token_for(target);
            let was_rejected = held
                .as_ref()
                .is_some_and(|h| refused_and_renewable(&session, h, rejected, now));
            // A token the upstream refused is never "still valid", whatever its expiry says.
            let valid = held
                .filter(|h| !was_rejected && h.is_valid(now))
                .map(|h| (h.access_token, h.token_type));
            if session.refresh_token.is_none() {
                if let Some(token) = valid {
                    return Ok(token);
                }
                if !target.is_login() {
                    return Err(RefreshError::TargetRefused {
                        error: "no refresh token to ask with".into(),
                    });
                }
                self.end_session(key).await;
                metrics::record(Event::SessionsEnded(EndReason::RefreshEnded, 1));
                tracing::info!(
                    reason = "no_refresh_token",
                    sub_hash = %user_hash(&session.sub),
                    "session ended"
                );
                return Err(RefreshError::SessionEnded);
            }

            if session.refresh_lease.as_ref().is_some_and(|l| l.is_held(now_ms)) {
                // Someone else is refreshing.
                if let Some(token) = valid {
                    return Ok(token);
                }
                if Instant::now() >= give_up {
                    return Err(RefreshError::InProgress);
                }
                tokio::time::sleep(WAIT_POLL).await;
                waited = true;
                session = self.reload(key).await?;
                continue;
            }

            // Whatever may be slow besides the grant (discovery, keys) is done before the
            // lease is taken, so the lease covers the grant and the write only.
            if !prepared {
                if let Err(e) = self.provider.prepare().await {
                    metrics::record(Event::Refresh(RefreshOutcome::ProviderFailure));
                    return unrefreshed(e, valid);
                }
                prepared = true;
                continue; // time passed: look at the session with a fresh clock
            }

            let lease = RefreshLease {
                owner: random_token(16),
                until_ms: now_ms + LEASE_MS,
            };
            let mut leased = session.clone();
            leased.refresh_lease = Some(lease.clone());
            leased.refresh_started_at = Some(now);
            leased.version = session.version + 1;
            match self.store.update_session(key, &leased, session.version).await {
                Ok(()) => return self.refresh_under_lease(key, leased, &lease, target, valid).await,
                Err(StoreError::Conflict) => {
                    session = self.reload(key).await?;
                    // A write whose answer was lost and that the SDK retried reads as a
                    // conflict: when the stored lease is ours, the first attempt landed.
                    if session.refresh_lease.as_ref() == Some(&lease) {
                        return self.refresh_under_lease(key, session, &lease, target, valid).await;
                    }
                    // Otherwise another caller changed it first (took the lease, or
                    // refreshed): look again.
                }
                Err(failure) => {
                    // The write may have landed with its answer lost and the SDK's retries
                    // failed too, or a racing caller's write may have got in first; the
                    // store as it reads now tells. A lease of ours left behind would make
                    // every caller wait it out.
                    let fresh = match self.reload(key).await {
                        Ok(fresh) => fresh,
                        Err(RefreshError::SessionEnded) => return Err(RefreshError::SessionEnded),
                        Err(_) => {
                            metrics::record(Event::Refresh(RefreshOutcome::StoreFailure));
                            return Err(failure.into());
                        }
                    };
                    if fresh.refresh_lease.as_ref() == Some(&lease) {
                        return self.refresh_under_lease(key, fresh, &lease, target, valid).await;
                    }
                    if fresh.version == session.version {
                        // Nothing moved: the store refused our write.
                        metrics::record(Event::Refresh(RefreshOutcome::StoreFailure));
                        return Err(failure.into());
                    }
                    // Another caller moved first (took the lease, or refreshed): look again.
                    session = fresh;
                }
            }
        }
    }

    async fn reload(&self, key: &StoreKey) -> Result<SessionRecord, RefreshError> {
        self.store
            .get_session(key, self.clock.now())
            .await?
            .ok_or(RefreshError::SessionEnded)
    }

    async fn refresh_under_lease(
        &self,
        key: &StoreKey,
        leased: SessionRecord,
        lease: &RefreshLease,
        target: &TokenTarget,
        valid: Option<(AccessToken, TokenType)>,
    ) -> Result<(AccessToken, TokenType), RefreshError> {
        let Some(refresh_token) = leased.refresh_token.clone() else {
            return Err(RefreshError::SessionEnded);
        };
        // The grant must end while the lease holds, leaving time for the write.
        let budget_ms = lease.until_ms - self.clock.now_ms() - WRITE_BUDGET_MS;
        let grant = tokio::time::timeout(
            Duration::from_millis(budget_ms.max(0) as u64),
            self.provider.refresh(&refresh_token, target, leased.dpop_key.as_ref()),
        );
        match grant.await.unwrap_or(Err(OidcError::Timeout)) {
            Ok(tokens) => self.save_refreshed(key, leased, lease, target, tokens).await,
            Err(e) if e.is_invalid_grant() => {
                metrics::record(Event::Refresh(RefreshOutcome::InvalidGrant));
                // The grant is gone at the provider (revoked, expired, or a rotated token
                // reused), unless another instance refreshed meanwhile: only the session
                // as this caller read it is ended.
                if self.store.delete_session_at(key, leased.version).await? {
                    metrics::record(Event::SessionsEnded(EndReason::RefreshEnded, 1));
                    tracing::info!(
                        reason = "invalid_grant",
                        sub_hash = %user_hash(&leased.sub),
                        "session ended"
                    );
                    return Err(RefreshError::SessionEnded);
                }
                match self.reload(key).await? {
                    fresh if fresh.refresh_token != leased.refresh_token => {
                        tracing::warn!("refresh token refused, but another instance had refreshed; session kept");
                        fresh
                            .token_for(target)
                            .map(|held| (held.access_token, held.token_type))
                            .ok_or(RefreshError::InProgress)
                    }
                    _ => Err(RefreshError::SessionEnded),
                }
            }
            Err(OidcError::Rejected { error }) if !target.is_login() => {
                // The provider will not issue this route's token; the session and the
                // other routes' tokens are not affected.
                self.release_lease(key, leased).await;
                tracing::warn!(error = %error, "the provider refused an API route's token");
                Err(RefreshError::TargetRefused { error })
            }
            Err(e) => {
                metrics::record(Event::Refresh(RefreshOutcome::ProviderFailure));
                self.release_lease(key, leased).await;
                unrefreshed(e, valid)
            }
        }
    }

    async fn save_refreshed(
        &self,
        key: &StoreKey,
        leased: SessionRecord,
        lease: &RefreshLease,
        target: &TokenTarget,
        tokens: TokenSet,
    ) -> Result<(AccessToken, TokenType), RefreshError> {
        let now = self.clock.now();
        let access_token = tokens.access_token.clone();
        let usable = (access_token.clone(), tokens.token_type);
        let apply = |current: &SessionRecord| {
            let mut next = current.clone();
            next.set_token(
                target,
                HeldToken {
                    access_token: tokens.access_token.clone(),
                    token_type: tokens.token_type,
                    expires_at: tokens.expires_in.map(|secs| now.saturating_add(secs)),
                    issued_at: now,
                },
            );
            // Rotation: the new refresh token replaces the old in the same write.
            if let Some(rotated) = &tokens.refresh_token {
                next.refresh_token = Some(rotated.clone());
            }
            next.refresh_lease = None;
            next.version = current.version + 1;
            next
        };
        // The provider has spent the old refresh token: the new one must reach the store.
        // Store failures are retried until the lease is about to lapse; only then is the
        // caller told, and nobody deletes the session for it.
        let deadline_ms = lease.until_ms - WRITE_MARGIN_MS;
        let mut backoff = WRITE_RETRY_FIRST;
        // The token the provider has just spent: while the store still holds it, whoever
        // holds the lease now could only present it in vain, so our rotation must land.
        let spent = leased.refresh_token.clone();
        let mut current = leased;
        let mut conflicts = 0;
        let saved = loop {
            let next = apply(&current);
            let failure = match self.store.update_session(key, &next, current.version).await {
                Ok(()) => break next,
                Err(StoreError::Conflict) if conflicts < WRITE_ATTEMPTS => {
                    conflicts += 1;
                    // An idle-expiry slide interleaved, or (clocks apart) another instance
                    // took the lease over: keep our tokens on top of it, as long as the
                    // lease is still ours or the store still holds the spent token.
                    match self.store.get_session(key, self.clock.now()).await {
                        Ok(Some(fresh))
                            if fresh.refresh_lease.as_ref() == Some(lease) || fresh.refresh_token == spent =>
                        {
                            current = fresh;
                            continue;
                        }
                        // A retried write that had landed: our tokens are there.
                        Ok(Some(fresh)) if fresh.token_for(target).is_some_and(|h| h.access_token == access_token) => {
                            break fresh;
                        }
                        Ok(_) => {
                            // Another instance refreshed (or the session ended) meanwhile.
                            tracing::warn!("refresh lease lost before the tokens were saved");
                            metrics::record(Event::Refresh(RefreshOutcome::Done));
                            return Ok(usable);
                        }
                        Err(e) => e,
                    }
                }
                Err(StoreError::Conflict) => {
                    tracing::warn!("could not save refreshed tokens after retries");
                    metrics::record(Event::Refresh(RefreshOutcome::Done));
                    return Ok(usable);
                }
                Err(e) => e,
            };
            if self.clock.now_ms() + backoff.as_millis() as i64 >= deadline_ms {
                tracing::error!(error = %failure, "refreshed tokens not saved before the lease lapsed");
                metrics::record(Event::Refresh(RefreshOutcome::StoreFailure));
                return Err(failure.into());
            }
            tracing::warn!(error = %failure, "saving refreshed tokens failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(WRITE_RETRY_MAX);
        };
        metrics::record(Event::Refresh(RefreshOutcome::Done));
        tracing::info!(reason = "refreshed", sub_hash = %user_hash(&saved.sub), "token refreshed");
        match tokens.id_token {
            Some(id_token) => self.adopt_id_token(key, saved, id_token).await.map(|()| usable),
            None => Ok(usable),
        }
    }

    /// A refreshed ID token, checked after the tokens are safe in the store (its keys may
    /// need a fetch): valid and naming the same user, its claims replace the session's;
    /// otherwise the provider answered for someone else, and the session ends (OIDC Core
    /// §12.2).
    async fn adopt_id_token(
        &self,
        key: &StoreKey,
        saved: SessionRecord,
        id_token: IdToken,
    ) -> Result<(), RefreshError> {
        let verified = match self
            .provider
            .verify_refreshed_id_token(&id_token, self.clock.now())
            .await
        {
            Ok(verified) if verified.sub == saved.sub => verified,
            Ok(_) => return self.end_for_id_token(key, "names another subject").await,
            Err(OidcError::InvalidIdToken(why)) => return self.end_for_id_token(key, &why).await,
            Err(e @ OidcError::IdTokenAlgorithm { .. }) => return self.end_for_id_token(key, &e.to_string()).await,
            Err(e) => {
                // The keys could not be read: the token is not known bad; the claims wait.
                tracing::warn!(error = %e, "refreshed ID token not checked; claims kept");
                return Ok(());
            }
        };
        let mut next = saved.clone();
        next.claims = verified.claims;
        next.id_token = id_token;
        next.version = saved.version + 1;
        if let Err(e) = self.store.update_session(key, &next, saved.version).await {
            // The tokens are saved; only the profile claims stay as they were.
            tracing::warn!(error = %e, "could not save the refreshed ID token's claims");
        }
        Ok(())
    }

    async fn end_for_id_token(&self, key: &StoreKey, why: &str) -> Result<(), RefreshError> {
        tracing::warn!(reason = why, "refreshed ID token refused; session ended");
        self.end_session(key).await;
        metrics::record(Event::SessionsEnded(EndReason::InvalidIdToken, 1));
        Err(RefreshError::SessionEnded)
    }

    async fn release_lease(&self, key: &StoreKey, leased: SessionRecord) {
        let mut released = leased.clone();
        released.refresh_lease = None;
        released.version = leased.version + 1;
        if let Err(e) = self.store.update_session(key, &released, leased.version).await {
            tracing::warn!(error = %e, "could not release the refresh lease; it expires on its own");
        }
    }

    /// Deletes a session that can no longer be used.
    pub async fn end_session(&self, key: &StoreKey) {
        if let Err(e) = self.store.delete_session(key).await {
            tracing::warn!(error = %e, "could not delete an ended session");
        }
    }
}

/// The answer when the provider failed: a still-valid token serves until it expires.
fn unrefreshed<T>(e: OidcError, valid: Option<T>) -> Result<T, RefreshError> {
    match valid {
        Some(token) => {
            tracing::warn!(error = %e, "refresh failed; using the still-valid access token");
            Ok(token)
        }
        None => Err(RefreshError::Provider(e)),
    }
}

/// Whether `held` is the token the upstream just refused and a forced refresh is not
/// throttled. Throttled per session in the store, so across every instance: within the
/// interval the upstream's 401 stands, and no token request follows it.
fn refused_and_renewable(session: &SessionRecord, held: &HeldToken, rejected: Option<&AccessToken>, now: i64) -> bool {
    rejected == Some(&held.access_token) && forced_refresh_of_allowed(session, held.issued_at, now)
}

#[cfg(test)]
mod tests;
