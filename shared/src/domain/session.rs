//! The session and login-transaction records, their lifetimes and the token-refresh
//! decisions: data and pure rules that take `now`, no I/O.
//!
//! A session ends at the earlier of its absolute expiry (from login) and its idle expiry
//! (sliding with activity). Sliding is throttled: the idle expiry moves only once a
//! fraction of the idle window has passed, so the steady-state request is one read and no
//! write.

use serde::{Deserialize, Serialize};

use crate::domain::login_options::AuthRequirements;
use crate::domain::routes::TokenTarget;
use crate::domain::secret::{AccessToken, DpopKeySecret, IdToken, PkceVerifier, RefreshToken};

/// Longest lead time before access-token expiry at which a refresh is started.
pub const REFRESH_LEAD_SECS: i64 = 60;
/// The idle expiry is moved forward once this fraction (1/n) of the idle window has passed.
pub const TOUCH_FRACTION: i64 = 8;
/// An upstream's refusal of the access token forces a refresh only once this long has
/// passed since the token was obtained and since the last refresh started, so a stream of
/// upstream 401s never becomes a stream of token requests.
pub const FORCED_REFRESH_INTERVAL_SECS: i64 = 30;

/// A pending login: what the callback needs to finish the grant this browser started.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoginTransaction {
    /// PKCE code verifier (RFC 7636); the challenge went to the provider.
    pub pkce_verifier: PkceVerifier,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// Where to send the browser after login (already validated).
    pub return_to: String,
    /// Epoch seconds after which the transaction is void.
    pub expires_at: i64,
    /// The hash of the session id the browser held when the login started: the callback
    /// is a cross-site navigation, on which the browser withholds its `SameSite=Strict`
    /// session cookie, so the session a new login replaces is recorded here.
    #[serde(default)]
    pub replaces_session: Option<String>,
    /// What the login asked of the authentication (`max_age`, `acr_values`), checked in
    /// the ID token.
    #[serde(default)]
    pub requirements: AuthRequirements,
    /// A silent login (`prompt=none`): the provider's `login_required`,
    /// `consent_required` or `interaction_required` sends the browser back to
    /// `return_to` with the code.
    #[serde(default)]
    pub silent: bool,
    /// The DPoP key (RFC 9449) made for this login with `BFF_DPOP=on`: the code exchange
    /// proves possession of it, and the session keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<DpopKeySecret>,
}

/// How an access token is presented (RFC 6749 §7.1): as the provider's `token_type` said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenType {
    /// `Authorization: Bearer <token>` (RFC 6750).
    #[default]
    Bearer,
    /// `Authorization: DPoP <token>` with a proof signed by the session's key (RFC 9449).
    DPoP,
}

impl TokenType {
    /// Whether it is `Bearer` (the default, not written out).
    pub fn is_bearer(&self) -> bool {
        *self == Self::Bearer
    }
}

impl LoginTransaction {
    /// An explicit copy (the verifier is deliberately not `Clone`).
    pub fn copy(&self) -> Self {
        Self {
            pkce_verifier: PkceVerifier::new(self.pkce_verifier.secret()),
            nonce: self.nonce.clone(),
            return_to: self.return_to.clone(),
            expires_at: self.expires_at,
            replaces_session: self.replaces_session.clone(),
            requirements: self.requirements.clone(),
            silent: self.silent,
            dpop_key: self.dpop_key.clone(),
        }
    }
}

/// Everything the BFF keeps about a logged-in user. Tokens never leave this record
/// except towards the provider and the upstream API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Subject (`sub`) of the ID token.
    pub sub: String,
    /// Provider session id (`sid`), when the ID token carried one.
    pub sid: Option<String>,
    /// The validated ID-token claims, as shown by `/auth/me`.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The raw ID token, kept only as `id_token_hint` for RP-initiated logout.
    pub id_token: IdToken,
    /// Current access token for the upstream API.
    pub access_token: AccessToken,
    /// How the access token is presented.
    #[serde(default, skip_serializing_if = "TokenType::is_bearer")]
    pub access_token_type: TokenType,
    /// The session's DPoP private key, with `BFF_DPOP=on`: made at login, kept across
    /// refreshes, never sent anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<DpopKeySecret>,
    /// Epoch seconds when the access token expires, when the provider said.
    pub access_expires_at: Option<i64>,
    /// Epoch seconds when the access token was obtained.
    pub access_issued_at: i64,
    /// Refresh token, when the provider issued one.
    pub refresh_token: Option<RefreshToken>,
    /// Epoch seconds of login.
    pub created_at: i64,
    /// Absolute end of the session (epoch seconds).
    pub expires_at: i64,
    /// End of the session if it stays idle (epoch seconds).
    pub idle_expires_at: i64,
    /// Optimistic-concurrency version, bumped by every update.
    pub version: u64,
    /// A refresh in progress somewhere: the one caller allowed to use the refresh token.
    #[serde(default)]
    pub refresh_lease: Option<RefreshLease>,
    /// Epoch seconds when a refresh last started (its lease was taken), whatever came of
    /// it: a failed refresh counts against the forced-refresh interval too.
    #[serde(default)]
    pub refresh_started_at: Option<i64>,
    /// Access tokens for API routes that need another resource, audience or scope than
    /// the login's token, one per distinct target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_tokens: Vec<ApiToken>,
    /// The userinfo endpoint's claims at login, when it was asked and named the same
    /// `sub` (protocol claims removed); `/auth/me` shows them under the ID token's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<serde_json::Map<String, serde_json::Value>>,
    /// The browser family the login came from ([`browser_family`]), for an operator's
    /// listing of a user's sessions; never the full `User-Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// The coarse family of a `User-Agent` header: `Edge`, `Chrome`, `Firefox`, `Safari` or
/// `other`. Only this is kept: the full string, with its versions and platform, would help
/// single a person out.
pub fn browser_family(user_agent: Option<&str>) -> &'static str {
    let Some(ua) = user_agent else {
        return "other";
    };
    // Order matters: Edge's string names Chrome and Safari, Chrome's names Safari.
    if ua.contains("Edg/") || ua.contains("EdgA/") || ua.contains("EdgiOS/") {
        "Edge"
    } else if ua.contains("Firefox/") || ua.contains("FxiOS/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("CriOS/") {
        "Chrome"
    } else if ua.contains("Safari/") && ua.contains("Version/") {
        "Safari"
    } else {
        "other"
    }
}

/// An access token obtained with the refresh grant for one [`TokenTarget`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// What the token was asked for.
    pub target: TokenTarget,
    /// The token.
    pub access_token: AccessToken,
    /// How the token is presented.
    #[serde(default, skip_serializing_if = "TokenType::is_bearer")]
    pub token_type: TokenType,
    /// Epoch seconds when it expires, when the provider said.
    pub expires_at: Option<i64>,
    /// Epoch seconds when it was obtained.
    pub issued_at: i64,
}

/// The BFF's own client-credentials token for one [`TokenTarget`], shared by every
/// instance through the store, with the same single-flight lease as sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTokenRecord {
    /// The token, when one was obtained (a first lease is written before any token).
    pub access_token: Option<AccessToken>,
    /// Epoch seconds when it expires.
    pub expires_at: i64,
    /// Epoch seconds when it was obtained.
    pub issued_at: i64,
    /// A renewal in progress somewhere.
    #[serde(default)]
    pub lease: Option<RefreshLease>,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: u64,
}

impl ClientTokenRecord {
    /// The token and its lifetime, when there is one.
    pub fn held(&self) -> Option<HeldToken> {
        self.access_token.as_ref().map(|token| HeldToken {
            access_token: token.clone(),
            token_type: TokenType::Bearer,
            expires_at: Some(self.expires_at),
            issued_at: self.issued_at,
        })
    }
}

/// One access token of a session and its lifetime, whichever target it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldToken {
    /// The token.
    pub access_token: AccessToken,
    /// How it is presented.
    pub token_type: TokenType,
    /// Epoch seconds when it expires, when the provider said.
    pub expires_at: Option<i64>,
    /// Epoch seconds when it was obtained.
    pub issued_at: i64,
}

impl HeldToken {
    /// Whether it should be refreshed at `now` (see [`token_due`]).
    pub fn is_due(&self, now: i64) -> bool {
        token_due(self.expires_at, self.issued_at, now)
    }

    /// Whether it is known to be still valid at `now`.
    pub fn is_valid(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|exp| now < exp)
    }
}

/// The right to refresh a session's tokens, held by one caller at a time across every
/// instance; it expires on its own, so a crashed holder blocks nobody for long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshLease {
    /// Random id of the holder.
    pub owner: String,
    /// Epoch milliseconds after which the lease is void.
    pub until_ms: i64,
}

impl RefreshLease {
    /// Whether the lease still holds at `now_ms`.
    pub fn is_held(&self, now_ms: i64) -> bool {
        now_ms < self.until_ms
    }
}

impl SessionRecord {
    /// The claims `/auth/me` shows: userinfo's overlaid by the ID token's.
    pub fn shown_claims(&self) -> serde_json::Map<String, serde_json::Value> {
        crate::domain::claims::merged(&self.claims, self.userinfo.as_ref())
    }

    /// The moment the item may be deleted: the earlier of the two expiries.
    pub fn ttl(&self) -> i64 {
        self.expires_at.min(self.idle_expires_at)
    }

    /// The access token this session holds for `target`: the login's own for the empty
    /// target, otherwise the one obtained for it, if any.
    pub fn token_for(&self, target: &TokenTarget) -> Option<HeldToken> {
        if target.is_login() {
            return Some(HeldToken {
                access_token: self.access_token.clone(),
                token_type: self.access_token_type,
                expires_at: self.access_expires_at,
                issued_at: self.access_issued_at,
            });
        }
        self.api_tokens.iter().find(|t| t.target == *target).map(|t| HeldToken {
            access_token: t.access_token.clone(),
            token_type: t.token_type,
            expires_at: t.expires_at,
            issued_at: t.issued_at,
        })
    }

    /// Keeps `token` as this session's token for `target`, replacing the previous one.
    pub fn set_token(&mut self, target: &TokenTarget, token: HeldToken) {
        if target.is_login() {
            self.access_token = token.access_token;
            self.access_token_type = token.token_type;
            self.access_expires_at = token.expires_at;
            self.access_issued_at = token.issued_at;
            return;
        }
        self.api_tokens.retain(|t| t.target != *target);
        self.api_tokens.push(ApiToken {
            target: target.clone(),
            access_token: token.access_token,
            token_type: token.token_type,
            expires_at: token.expires_at,
            issued_at: token.issued_at,
        });
    }
}

/// `(expires_at, idle_expires_at)` of a session created at `now`.
pub fn new_expiries(now: i64, idle_secs: i64, max_secs: i64) -> (i64, i64) {
    let expires_at = now.saturating_add(max_secs);
    (expires_at, now.saturating_add(idle_secs).min(expires_at))
}

/// Whether the session is still live at `now` (both lifetimes enforced here, not only by TTL).
pub fn is_live(session: &SessionRecord, now: i64) -> bool {
    now < session.expires_at && now < session.idle_expires_at
}

/// Whether the access token should be refreshed at `now`: within the lead time of its
/// expiry. The lead is at most half the token's lifetime, so a token that was just
/// refreshed is never due again at once, however short-lived.
pub fn refresh_due(session: &SessionRecord, now: i64) -> bool {
    token_due(session.access_expires_at, session.access_issued_at, now)
}

/// Whether a token obtained at `issued_at` that expires at `expires_at` should be
/// refreshed at `now` (see [`refresh_due`]); one without a known expiry never is.
pub fn token_due(expires_at: Option<i64>, issued_at: i64, now: i64) -> bool {
    let Some(expires_at) = expires_at else {
        return false;
    };
    let lifetime = (expires_at - issued_at).max(0);
    let lead = REFRESH_LEAD_SECS.min(lifetime / 2);
    now >= expires_at - lead
}

/// When the session last asked the provider for tokens: the latest of its tokens'
/// `issued_at` (login or refresh, for any target) and of its last refresh's start, so a
/// refresh that failed counts too (epoch seconds).
pub fn last_token_request(session: &SessionRecord) -> i64 {
    session
        .api_tokens
        .iter()
        .map(|t| t.issued_at)
        .chain(session.refresh_started_at)
        .fold(session.access_issued_at, i64::max)
}

/// Whether the provider should be asked at `now`, with the refresh grant, whether the
/// user's grant still stands (`BFF_PROVIDER_SESSION_CHECK_SECS` = `every`): `every`
/// seconds or more after the session's [`last_token_request`]. Never when the check is off,
/// and never without a refresh token, which is the only thing to ask with.
pub fn provider_check_due(session: &SessionRecord, every: Option<i64>, now: i64) -> bool {
    every.is_some_and(|every| session.refresh_token.is_some() && now - last_token_request(session) >= every)
}

/// Whether `held`, a token of `session`, should be refreshed at `now`: near its expiry
/// ([`HeldToken::is_due`]), or because the provider check is due ([`provider_check_due`]).
pub fn refresh_wanted(session: &SessionRecord, held: &HeldToken, check_every: Option<i64>, now: i64) -> bool {
    held.is_due(now) || provider_check_due(session, check_every, now)
}

/// Whether an upstream's refusal of the access token at `now` may force a refresh: more
/// than [`FORCED_REFRESH_INTERVAL_SECS`] after the token was obtained and after the last
/// refresh started. Whole seconds on both sides, so "more than" keeps the real gap at or
/// above the interval.
pub fn forced_refresh_allowed(session: &SessionRecord, now: i64) -> bool {
    forced_refresh_of_allowed(session, session.access_issued_at, now)
}

/// [`forced_refresh_allowed`] for a token of `session` obtained at `issued_at` (a route's
/// own token, say): the session's last refresh counts whichever token it was for.
pub fn forced_refresh_of_allowed(session: &SessionRecord, issued_at: i64, now: i64) -> bool {
    let last = session
        .refresh_started_at
        .map_or(issued_at, |started| started.max(issued_at));
    now - last > FORCED_REFRESH_INTERVAL_SECS
}

/// Whether activity at `now` should move the idle expiry (throttled, see module docs).
pub fn touch_due(session: &SessionRecord, now: i64, idle_secs: i64) -> bool {
    let last_touch = session.idle_expires_at - idle_secs;
    let target = now.saturating_add(idle_secs).min(session.expires_at);
    target > session.idle_expires_at && now - last_touch >= (idle_secs / TOUCH_FRACTION).max(1)
}

/// The idle expiry after activity at `now`, capped by the absolute expiry.
pub fn slid_idle_expiry(session: &SessionRecord, now: i64, idle_secs: i64) -> i64 {
    now.saturating_add(idle_secs).min(session.expires_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_reduced_to_their_family() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "Chrome",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
                "Edge",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "Firefox",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
                "Safari",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1",
                "Chrome",
            ),
            ("curl/8.5.0", "other"),
            ("", "other"),
        ];
        for (ua, family) in cases {
            assert_eq!(browser_family(Some(ua)), family, "{ua}");
        }
        assert_eq!(browser_family(None), "other");
    }

    fn session(now: i64, access_lifetime: Option<i64>) -> SessionRecord {
        let (expires_at, idle_expires_at) = new_expiries(now, 3600, 86400);
        SessionRecord {
            access_token_type: Default::default(),
            dpop_key: None,
            sub: "alice".into(),
            sid: None,
            claims: serde_json::Map::new(),
            id_token: IdToken::new("x"),
            access_token: AccessToken::new("a"),
            access_expires_at: access_lifetime.map(|l| now + l),
            access_issued_at: now,
            refresh_token: None,
            created_at: now,
            expires_at,
            idle_expires_at,
            version: 1,
            refresh_lease: None,
            refresh_started_at: None,
            user_agent: None,
            api_tokens: Vec::new(),
            userinfo: None,
        }
    }

    #[test]
    fn idle_expiry_never_outlives_the_absolute_expiry() {
        assert_eq!(new_expiries(100, 50, 1000), (1100, 150));
        assert_eq!(new_expiries(100, 5000, 1000), (1100, 1100));
    }

    #[test]
    fn session_dies_at_the_earlier_expiry() {
        let s = session(1000, None);
        assert!(is_live(&s, 1000));
        assert!(is_live(&s, 1000 + 3599));
        assert!(!is_live(&s, 1000 + 3600), "idle expiry");
        let mut active = s.clone();
        active.idle_expires_at = active.expires_at + 10;
        assert!(!is_live(&active, active.expires_at), "absolute expiry");
    }

    #[test]
    fn refresh_lead_is_a_minute_for_long_tokens_and_half_for_short_ones() {
        let long = session(0, Some(3600));
        assert!(!refresh_due(&long, 3539));
        assert!(refresh_due(&long, 3540));
        let short = session(0, Some(30));
        assert!(
            !refresh_due(&short, 0),
            "a token just obtained is not due again at once"
        );
        assert!(!refresh_due(&short, 14));
        assert!(refresh_due(&short, 15));
        assert!(
            !refresh_due(&session(0, None), 1_000_000),
            "unknown expiry is never due"
        );
    }

    #[test]
    fn the_provider_check_is_due_every_n_seconds_after_the_last_token_request() {
        let mut s = session(1000, Some(3600));
        let held = s.token_for(&TokenTarget::default()).expect("login token");
        s.refresh_token = Some(RefreshToken::new("r"));
        assert!(!provider_check_due(&s, None, 1_000_000), "off");
        assert!(!provider_check_due(&s, Some(60), 1059));
        assert!(provider_check_due(&s, Some(60), 1060));
        assert!(
            refresh_wanted(&s, &held, Some(60), 1060),
            "due although the token is not"
        );
        assert!(!refresh_wanted(&s, &held, None, 1060));
        // A later token for an API route, or a refresh that started (and failed), counts.
        s.api_tokens.push(ApiToken {
            target: TokenTarget::default(),
            access_token: AccessToken::new("b"),
            expires_at: None,
            issued_at: 1050,
            token_type: TokenType::Bearer,
        });
        assert!(!provider_check_due(&s, Some(60), 1109));
        assert!(provider_check_due(&s, Some(60), 1110));
        s.refresh_started_at = Some(1200);
        assert!(!provider_check_due(&s, Some(60), 1259));
        assert!(provider_check_due(&s, Some(60), 1260));
        s.refresh_token = None;
        assert!(!provider_check_due(&s, Some(60), 1_000_000), "nothing to ask with");
    }

    #[test]
    fn an_upstream_refusal_forces_at_most_one_refresh_per_interval() {
        let mut s = session(1000, Some(3600));
        let just_after = 1000 + FORCED_REFRESH_INTERVAL_SECS;
        assert!(!forced_refresh_allowed(&s, 1000), "a token just obtained");
        assert!(
            !forced_refresh_allowed(&s, just_after),
            "the whole interval, not one second less"
        );
        assert!(forced_refresh_allowed(&s, just_after + 1));
        s.refresh_started_at = Some(2000);
        assert!(
            !forced_refresh_allowed(&s, 2000 + FORCED_REFRESH_INTERVAL_SECS),
            "a refresh that started (and failed) counts too"
        );
        assert!(forced_refresh_allowed(&s, 2001 + FORCED_REFRESH_INTERVAL_SECS));
    }

    #[test]
    fn sliding_is_throttled_to_a_fraction_of_the_idle_window() {
        let s = session(0, None);
        assert!(!touch_due(&s, 100, 3600), "recent activity costs no write");
        assert!(touch_due(&s, 3600 / TOUCH_FRACTION, 3600));
        assert_eq!(slid_idle_expiry(&s, 500, 3600), 4100);
        let mut near_end = s.clone();
        near_end.expires_at = 3600;
        assert!(
            !touch_due(&near_end, 1000, 3600),
            "cannot slide past the absolute expiry"
        );
    }
}
