//! Finishing the grant: the transaction is consumed exactly once (atomic
//! delete-and-return), then RFC 9207 `iss`, the code exchange with the PKCE verifier,
//! full ID-token validation (with the `max_age` and `acr_values` the login asked),
//! userinfo when the ID token lacks the profile (see [`fetch_userinfo`]), and a brand-new
//! session. A new login ends the browser's previous session in the store, not only in its
//! cookie, and only once the new one exists.

use super::Deps;
use crate::domain::claims::{lacks_requested_claims, userinfo_claims};
use crate::domain::login_options::{SILENT_LOGIN_ERRORS, UnmetRequirement};
use crate::domain::secret::{AccessToken, SessionId, hash};
use crate::domain::session::{LoginTransaction, SessionRecord, TokenType, browser_family, new_expiries};
use crate::oidc::{OidcError, UserinfoError, VerifiedClaims};
use crate::platform::config::UserinfoMode;
use crate::platform::dpop::DpopKey;
use crate::platform::logging::user_hash;
use crate::platform::metrics::{self, EndReason, Event};
use crate::store::{StoreError, StoreKey, session_key};

/// Why a callback created no session.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The provider reports that the user refused (`error=access_denied`).
    #[error("access denied at the provider")]
    AccessDenied {
        /// The provider's `error` and `error_description`, to show (escaped).
        text: String,
    },
    /// The provider reports another error.
    #[error("the provider reported an error")]
    ProviderReported {
        /// The provider's `error` and `error_description`, to show (escaped).
        text: String,
    },
    /// The callback has no `code`.
    #[error("the callback has no code")]
    MissingCode,
    /// The callback has no `state`.
    #[error("the callback has no state")]
    MissingState,
    /// This browser did not start the login, or it expired, or was used already.
    #[error("unknown, expired or spent state")]
    UnknownState,
    /// RFC 9207: `iss` is missing though advertised, or names another issuer.
    #[error("the authorization response names another issuer")]
    WrongIssuer,
    /// The ID token does not show what the login asked (`max_age`, `acr_values`).
    #[error("the authentication does not meet the login's requirements: {0}")]
    Unmet(#[from] UnmetRequirement),
    /// The token response carries no ID token.
    #[error("no ID token")]
    NoIdToken,
    /// The userinfo endpoint named another `sub` than the ID token (OIDC Core §5.3.2).
    #[error("userinfo names another subject than the ID token")]
    UserinfoSubjectMismatch,
    /// The provider failed or refused (code exchange, discovery, ID-token validation).
    #[error(transparent)]
    Provider(#[from] OidcError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A login completed: the new session's id, where to send the browser, and the user.
#[derive(Debug)]
pub struct LoggedIn {
    /// The new session id (for the cookie only).
    pub id: SessionId,
    /// Where the browser goes now.
    pub return_to: String,
    /// The user's `sub`.
    pub sub: String,
}

/// Consumes the transaction of `state`, whatever happens next, so it is never used twice.
pub async fn take_transaction(deps: &Deps<'_>, state: &str) -> Result<Option<LoginTransaction>, StoreError> {
    deps.store
        .take_transaction(&StoreKey::transaction(&hash(state)), deps.clock.now())
        .await
}

/// The provider's `error` as the text a person sees.
pub fn provider_reported(error: &str, description: &str) -> CallbackError {
    let text = if description.is_empty() {
        format!("The identity provider answered: {error}")
    } else {
        format!("The identity provider answered: {error}: {description}")
    };
    if error == "access_denied" {
        CallbackError::AccessDenied { text }
    } else {
        CallbackError::ProviderReported { text }
    }
}

/// The code of a provider error that ends a silent login (`prompt=none`) by sending the
/// browser back to the application, when `error` is one and `tx` was silent.
pub fn silent_failure(tx: &LoginTransaction, error: &str) -> Option<&'static str> {
    if !tx.silent {
        return None;
    }
    SILENT_LOGIN_ERRORS.iter().copied().find(|code| *code == error)
}

/// Redeems `code` for the login `tx` and creates the session; ends the session the
/// browser held when the login started, and `previous` (the one it presents now). Of
/// the browser's `user_agent` the session keeps only its family.
pub async fn complete(
    deps: &Deps<'_>,
    tx: LoginTransaction,
    code: &str,
    iss: Option<&str>,
    previous: Option<SessionId>,
    user_agent: Option<&str>,
) -> Result<LoggedIn, CallbackError> {
    check_issuer(deps, iss).await?;

    let dpop = match &tx.dpop_key {
        Some(secret) => Some(DpopKey::from_secret(secret).map_err(|e| OidcError::Dpop(e.to_string()))?),
        None => None,
    };
    let tokens = deps.oidc.exchange_code(code, tx.pkce_verifier, dpop.as_ref()).await?;
    deps.oidc.warn_if_no_refresh_token(tokens.refresh_token.is_some());
    let now = deps.clock.now();
    let id_token = tokens.id_token.ok_or(CallbackError::NoIdToken)?;
    let verified = deps.oidc.verify_id_token(&id_token, Some(&tx.nonce), now).await?;
    // OIDC Core 3.1.3.7 steps 11-13: what was asked must show in the token; until then
    // the browser's current session stays as it is (a failed step-up loses nothing).
    tx.requirements.check(&verified.claims, now)?;
    let bound = dpop.as_ref().filter(|_| tokens.token_type == TokenType::DPoP);
    let userinfo = fetch_userinfo(deps, &tokens.access_token, bound, &verified, now).await?;

    let (expires_at, idle_expires_at) = new_expiries(now, deps.config.session_idle_secs, deps.config.session_max_secs);
    let record = SessionRecord {
        sub: verified.sub,
        sid: verified.sid,
        claims: verified.claims,
        id_token,
        access_token: tokens.access_token,
        access_token_type: tokens.token_type,
        dpop_key: tx.dpop_key,
        access_expires_at: tokens.expires_in.map(|secs| now.saturating_add(secs)),
        access_issued_at: now,
        refresh_token: tokens.refresh_token,
        created_at: now,
        expires_at,
        idle_expires_at,
        version: 1,
        refresh_lease: None,
        refresh_started_at: None,
        api_tokens: Vec::new(),
        user_agent: Some(browser_family(user_agent).to_owned()),
        userinfo,
    };
    let id = SessionId::generate();
    deps.store.put_session(&session_key(&id), &record).await?;

    // The session the browser held at login (recorded then: this cross-site navigation
    // carries no `SameSite=Strict` cookie), and any it presents now, end here.
    let replaced = tx.replaces_session.as_deref().map(StoreKey::session);
    let presented = previous.map(|old| session_key(&old));
    for old in replaced
        .iter()
        .chain(presented.iter().filter(|k| Some(*k) != replaced.as_ref()))
    {
        match deps.store.delete_session(old).await {
            Ok(Some(_)) => metrics::record(Event::SessionsEnded(EndReason::Replaced, 1)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not delete the previous session"),
        }
    }
    tracing::info!(sub_hash = %user_hash(&record.sub), "session created");
    Ok(LoggedIn {
        id,
        return_to: tx.return_to,
        sub: record.sub,
    })
}

/// Userinfo's claims for the new session, when `BFF_USERINFO` and the ID token call for
/// them and discovery names an endpoint. A `sub` other than the ID token's fails the
/// login (the answer may be about another user; nothing of it is kept); any other failure
/// is logged and the login goes on with the ID token's claims alone.
async fn fetch_userinfo(
    deps: &Deps<'_>,
    access_token: &AccessToken,
    dpop: Option<&DpopKey>,
    verified: &VerifiedClaims,
    now: i64,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, CallbackError> {
    let wanted = match deps.config.userinfo {
        UserinfoMode::Off => false,
        UserinfoMode::Always => true,
        UserinfoMode::Auto => lacks_requested_claims(&verified.claims, &deps.config.scopes),
    };
    if !wanted {
        return Ok(None);
    }
    let endpoint = match deps.oidc.userinfo_endpoint().await {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "userinfo skipped: no discovery");
            return Ok(None);
        }
    };
    match deps
        .oidc
        .userinfo(&endpoint, access_token, dpop, &verified.sub, now)
        .await
    {
        Ok(claims) => Ok(Some(userinfo_claims(claims))),
        Err(UserinfoError::SubjectMismatch) => {
            tracing::warn!(
                sub_hash = %user_hash(&verified.sub),
                "login refused: the userinfo endpoint names another sub than the ID token"
            );
            Err(CallbackError::UserinfoSubjectMismatch)
        }
        Err(e) => {
            tracing::warn!(error = %e, "userinfo failed; the session has the ID token's claims only");
            Ok(None)
        }
    }
}

/// RFC 9207: when the provider advertises `iss` in authorization responses it must be
/// there and name our issuer (always, with `BFF_PROFILE=fapi2`); when present anyway it
/// must still match (mix-up defence).
async fn check_issuer(deps: &Deps<'_>, iss: Option<&str>) -> Result<(), CallbackError> {
    let advertised = deps
        .oidc
        .metadata()
        .await?
        .authorization_response_iss_parameter_supported;
    match iss {
        Some(iss) if iss == deps.config.issuer => Ok(()),
        None if !advertised && !deps.config.is_fapi2() => Ok(()),
        _ => Err(CallbackError::WrongIssuer),
    }
}
