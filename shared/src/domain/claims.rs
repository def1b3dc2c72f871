//! Which claims `/auth/me` shows, and how the ID token's and userinfo's are combined.
//!
//! `/auth/me` shows claims about the user, never claims about a token: a front end could
//! mistake the ID token's `exp` for the session's expiry, or a `nonce` for something to
//! keep. The authentication facts a front end needs for step-up (`acr`, `amr`,
//! `auth_time`) are kept from the ID token only; an `auth_time` that is not a positive
//! number of seconds (some providers send `0` for "unknown") is dropped rather than shown
//! as 1970. Userinfo adds profile claims; the ID token's win wherever both name a claim.

use serde_json::{Map, Value};

/// Claims about a token, not the user: never shown.
pub const PROTOCOL_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "azp",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "sid",
    "typ",
    "_claim_names",
    "_claim_sources",
];

/// Facts about the login itself (step-up): shown from the ID token, never taken from
/// userinfo, which does not describe this authentication.
pub const AUTHENTICATION_CLAIMS: &[&str] = &["acr", "amr", "auth_time"];

/// Claims a scope promises; with `BFF_USERINFO=auto`, an ID token with none of a
/// requested scope's claims sends the BFF to userinfo.
const SCOPE_CLAIMS: &[(&str, &[&str])] = &[
    (
        "profile",
        &["name", "given_name", "family_name", "preferred_username", "nickname"],
    ),
    ("email", &["email"]),
    ("address", &["address"]),
    ("phone", &["phone_number"]),
];

/// The ID token's claims as shown: protocol claims removed, `auth_time` only when it is
/// a positive number.
pub fn id_token_claims(mut claims: Map<String, Value>) -> Map<String, Value> {
    for name in PROTOCOL_CLAIMS {
        claims.remove(*name);
    }
    if claims
        .get("auth_time")
        .is_some_and(|t| t.as_i64().is_none_or(|t| t <= 0))
    {
        claims.remove("auth_time");
    }
    claims
}

/// Userinfo's claims as kept: protocol and authentication claims removed.
pub fn userinfo_claims(mut claims: Map<String, Value>) -> Map<String, Value> {
    for name in PROTOCOL_CLAIMS.iter().chain(AUTHENTICATION_CLAIMS) {
        claims.remove(*name);
    }
    claims
}

/// What `/auth/me` shows: userinfo's claims overlaid by the ID token's.
pub fn merged(id_token: &Map<String, Value>, userinfo: Option<&Map<String, Value>>) -> Map<String, Value> {
    let mut shown = userinfo.cloned().unwrap_or_default();
    for (name, value) in id_token {
        shown.insert(name.clone(), value.clone());
    }
    shown
}

/// Whether the ID token lacks the claims of a requested scope (`profile`, `email`,
/// `address`, `phone`): none of that scope's claims is present.
pub fn lacks_requested_claims(claims: &Map<String, Value>, scopes: &[String]) -> bool {
    SCOPE_CLAIMS
        .iter()
        .any(|(scope, names)| scopes.iter().any(|s| s == scope) && !names.iter().any(|name| claims.contains_key(*name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn id_token_claims_keep_user_and_step_up_claims_only() {
        let shown = id_token_claims(map(json!({
            "sub": "alice", "name": "Alice", "acr": "urn:mfa", "amr": ["pwd", "otp"], "auth_time": 1700000000,
            "iss": "i", "aud": "a", "azp": "a", "exp": 9, "iat": 1, "nbf": 1, "jti": "j", "nonce": "n",
            "at_hash": "h", "c_hash": "h", "s_hash": "h", "sid": "s", "typ": "ID"
        })));
        assert_eq!(
            shown,
            map(
                json!({"sub": "alice", "name": "Alice", "acr": "urn:mfa", "amr": ["pwd", "otp"], "auth_time": 1700000000})
            )
        );
    }

    #[test]
    fn an_auth_time_that_is_not_a_positive_time_is_dropped() {
        for unknown in [json!(0), json!(-5), json!("yesterday"), json!(null)] {
            let shown = id_token_claims(map(json!({"sub": "a", "auth_time": unknown})));
            assert!(!shown.contains_key("auth_time"), "{unknown}");
        }
    }

    #[test]
    fn the_id_tokens_claims_win_and_userinfo_adds_no_authentication_facts() {
        let id = map(json!({"sub": "alice", "name": "From the ID token", "acr": "1"}));
        let info = userinfo_claims(map(json!({
            "sub": "alice", "name": "From userinfo", "email": "a@example.com", "acr": "2", "amr": ["x"],
            "auth_time": 5, "iss": "i", "aud": "a", "iat": 1, "exp": 2
        })));
        let shown = merged(&id, Some(&info));
        assert_eq!(
            shown,
            map(json!({"sub": "alice", "name": "From the ID token", "acr": "1", "email": "a@example.com"}))
        );
        assert_eq!(merged(&id, None), id);
    }

    #[test]
    fn requested_scopes_without_their_claims_call_for_userinfo() {
        let scopes: Vec<String> = ["openid", "profile", "email"].map(String::from).to_vec();
        assert!(lacks_requested_claims(&map(json!({"sub": "a"})), &scopes));
        assert!(lacks_requested_claims(&map(json!({"sub": "a", "name": "A"})), &scopes));
        assert!(!lacks_requested_claims(
            &map(json!({"sub": "a", "preferred_username": "a", "email": "a@x"})),
            &scopes
        ));
        let openid_only = vec!["openid".to_owned()];
        assert!(!lacks_requested_claims(&map(json!({"sub": "a"})), &openid_only));
    }
}
