//! The BFF's two cookies: the session cookie and the login-transaction cookie.
//!
//! The session cookie holds only an opaque random id; the transaction cookie holds the
//! `state` values of this browser's pending logins (at most [`MAX_PENDING_LOGINS`]), which
//! binds each callback to the browser that started it while several tabs log in at once.
//! Neither ever holds a token. This module never logs a cookie value.

use cookie::{Cookie, SameSite};
use http::HeaderMap;

use crate::domain::secret::{SessionId, ct_eq};
use crate::service::login::LOGIN_TX_SECS;

/// How many pending logins one browser may have; the oldest is dropped beyond that, so
/// the cookie stays small however many logins are started.
pub const MAX_PENDING_LOGINS: usize = 8;

/// Cookie names and the `Secure` flag, fixed by whether the BFF runs on plain-http loopback.
#[derive(Debug, Clone, Copy)]
pub struct CookieNames {
    /// Name of the session cookie.
    pub session: &'static str,
    /// Name of the login-transaction cookie.
    pub tx: &'static str,
    /// Whether cookies carry `Secure` (always, except on plain-http loopback development).
    pub secure: bool,
}

impl CookieNames {
    /// The names for a deployment (`__Host-Http-` prefixed, `Secure`) or for loopback dev.
    pub fn new(loopback_dev: bool) -> Self {
        if loopback_dev {
            Self {
                session: "bff-session",
                tx: "bff-tx",
                secure: false,
            }
        } else {
            Self {
                session: "__Host-Http-bff-session",
                tx: "__Host-Http-bff-tx",
                secure: true,
            }
        }
    }

    /// `Set-Cookie` value of a session cookie: no `Expires`/`Max-Age`, the server
    /// enforces lifetimes.
    pub fn session_cookie(&self, id: &SessionId) -> String {
        self.build(self.session, id.secret(), SameSite::Strict, None)
    }

    /// `Set-Cookie` value that removes the session cookie.
    pub fn clear_session_cookie(&self) -> String {
        self.build(self.session, "", SameSite::Strict, Some(0))
    }

    /// `Set-Cookie` value of the transaction cookie for these pending `states`, or one that
    /// removes it when none are left. `Lax`: it must come back on the provider's redirect.
    pub fn tx_cookie(&self, states: &[String]) -> String {
        if states.is_empty() {
            self.build(self.tx, "", SameSite::Lax, Some(0))
        } else {
            self.build(self.tx, &states.join("."), SameSite::Lax, Some(LOGIN_TX_SECS))
        }
    }

    fn build(&self, name: &str, value: &str, same_site: SameSite, max_age: Option<i64>) -> String {
        let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(same_site)
            .build();
        if let Some(secs) = max_age {
            cookie.set_max_age(cookie::time::Duration::seconds(secs));
        }
        cookie.to_string()
    }

    /// The session id from the request's cookies. `None` when absent, malformed, or sent
    /// more than once (an injected duplicate must not be able to choose the session).
    pub fn session_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        let mut values = cookie_values(headers, self.session);
        let first = values.next()?;
        if values.next().is_some() || !is_token_shaped(&first) {
            return None;
        }
        Some(SessionId::new(first))
    }

    /// The pending login states this browser holds, oldest first, at most
    /// [`MAX_PENDING_LOGINS`] of well-formed values.
    pub fn pending_states(&self, headers: &HeaderMap) -> Vec<String> {
        let mut states: Vec<String> = Vec::new();
        for value in cookie_values(headers, self.tx) {
            for state in value.split('.') {
                if is_token_shaped(state) && !states.iter().any(|s| s == state) {
                    states.push(state.to_owned());
                }
            }
        }
        let excess = states.len().saturating_sub(MAX_PENDING_LOGINS);
        states.drain(..excess);
        states
    }
}

/// Whether `state` is among `pending`, compared in constant time.
pub fn holds_state(pending: &[String], state: &str) -> bool {
    pending.iter().fold(false, |found, s| found | ct_eq(s, state))
}

/// `pending` plus `state`, keeping only the newest [`MAX_PENDING_LOGINS`].
pub fn with_state(mut pending: Vec<String>, state: String) -> Vec<String> {
    pending.push(state);
    let excess = pending.len().saturating_sub(MAX_PENDING_LOGINS);
    pending.drain(..excess);
    pending
}

/// `pending` without `state`.
pub fn without_state(pending: &[String], state: &str) -> Vec<String> {
    pending.iter().filter(|s| !ct_eq(s, state)).cloned().collect()
}

/// Every value of cookie `name` across all `Cookie` headers (HTTP/2 may split them).
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v).filter_map(Result::ok))
        .filter(move |c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The BFF's random values are base64url of 32 bytes; anything else is not ours.
fn is_token_shaped(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secret::random_token;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, cookie.parse().expect("header"));
        h
    }

    fn attributes(set_cookie: &str) -> Vec<String> {
        set_cookie.split("; ").skip(1).map(str::to_ascii_lowercase).collect()
    }

    #[test]
    fn deployed_session_cookie_has_host_prefix_and_strict_attributes() {
        let names = CookieNames::new(false);
        let id = SessionId::generate();
        let set = names.session_cookie(&id);
        assert!(set.starts_with(&format!("__Host-Http-bff-session={}", id.secret())));
        let attrs = attributes(&set);
        for want in ["httponly", "samesite=strict", "secure", "path=/"] {
            assert!(attrs.contains(&want.to_string()), "{want} missing in {set}");
        }
        assert!(
            !attrs
                .iter()
                .any(|a| a.starts_with("max-age") || a.starts_with("expires") || a.starts_with("domain"))
        );
    }

    #[test]
    fn loopback_cookies_drop_prefix_and_secure_only() {
        let names = CookieNames::new(true);
        let set = names.session_cookie(&SessionId::generate());
        assert!(set.starts_with("bff-session="));
        let attrs = attributes(&set);
        assert!(!attrs.contains(&"secure".to_string()));
        assert!(attrs.contains(&"httponly".to_string()) && attrs.contains(&"samesite=strict".to_string()));
        let tx = names.tx_cookie(&[random_token(32)]);
        assert!(tx.starts_with("bff-tx=") && tx.contains("SameSite=Lax") && tx.contains("Max-Age=600"));
    }

    #[test]
    fn clearing_cookies_expires_them_immediately() {
        let names = CookieNames::new(false);
        assert!(names.clear_session_cookie().contains("Max-Age=0"));
        let cleared = names.tx_cookie(&[]);
        assert!(cleared.starts_with("__Host-Http-bff-tx=;") && cleared.contains("Max-Age=0"));
    }

    #[test]
    fn session_id_is_read_only_when_present_once_and_well_formed() {
        let names = CookieNames::new(false);
        let id = random_token(32);
        let read = names.session_id(&headers(&format!("a=b; __Host-Http-bff-session={id}")));
        assert_eq!(read.expect("present").secret(), id);
        assert!(names.session_id(&headers("__Host-Http-bff-session=short")).is_none());
        let twice = format!(
            "__Host-Http-bff-session={id}; __Host-Http-bff-session={}",
            random_token(32)
        );
        assert!(names.session_id(&headers(&twice)).is_none());
        assert!(names.session_id(&HeaderMap::new()).is_none());
    }

    #[test]
    fn pending_states_round_trip_and_never_pile_up() {
        let names = CookieNames::new(true);
        let mut pending = Vec::new();
        let states: Vec<String> = (0..20).map(|_| random_token(32)).collect();
        for s in &states {
            pending = with_state(pending, s.clone());
        }
        assert_eq!(pending.len(), MAX_PENDING_LOGINS);
        assert_eq!(pending, states[20 - MAX_PENDING_LOGINS..]);

        let set = names.tx_cookie(&pending);
        let value = set.split(';').next().expect("pair").trim_start_matches("bff-tx=");
        let read = names.pending_states(&headers(&format!("bff-tx={value}")));
        assert_eq!(read, pending);
        assert!(holds_state(&read, &states[19]) && !holds_state(&read, &states[0]));
        assert_eq!(without_state(&read, &states[19]).len(), MAX_PENDING_LOGINS - 1);
    }

    #[test]
    fn malformed_pending_states_are_ignored() {
        let names = CookieNames::new(true);
        let good = random_token(32);
        let read = names.pending_states(&headers(&format!("bff-tx=junk.{good}.{good}.a=b")));
        assert_eq!(read, [good]);
    }
}
