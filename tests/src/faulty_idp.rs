//! A deliberately faulty OpenID provider, and a BFF pointed at it.
//!
//! [`FaultyIdp`] is a small OpenID provider written for the attack tests. It serves
//! discovery, its JWKS, an authorization endpoint that redirects straight back with a
//! `code` (no login page), and a token endpoint that checks client authentication, the
//! code and the PKCE verifier (S256) like an honest provider, then answers whatever the
//! test's [`Scenario`] asks for: every broken ID token and token response of the OpenID
//! Foundation's RP certification tests (`rp-id_token-sig-none`, `rp-id_token-bad-sig-rs256`,
//! `rp-id_token-iss-mismatch`, `rp-id_token-aud`, `rp-id_token-iat`, `rp-nonce-invalid`,
//! `rp-id_token-kid-absent-*`, `rp-key-rotation-op-sign-key`) and more: HMAC forgeries,
//! RFC 9207 mix-ups, a lying discovery document, errors, garbage, a token endpoint that
//! never answers or that redirects.
//!
//! It counts what the BFF asks of it (discovery, JWKS and token requests), so a test can
//! check that the BFF refused *before* redeeming a code, or that unknown `kid`s did not
//! flood the JWKS endpoint. [`spawn_app_against`] starts a BFF configured for this
//! provider (its fixed [`CLIENT_ID`] and [`CLIENT_SECRET`]) on the in-memory store.
//!
//! The three RSA keys below exist only for these tests and protect nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bff::App;
use bff::platform::config::Config;
use bff::store::Store;
use bff::store::memory::MemoryStore;
use hmac::{Hmac, Mac as _};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use url::Url;

use bff_testkit::BffBrowser;

/// The client id the provider knows (the BFF under test is configured with it).
pub const CLIENT_ID: &str = "bff-under-attack";
/// That client's secret; also the key of the HS256 forgeries.
pub const CLIENT_SECRET: &str = "s3cret-known-to-the-client-and-the-provider-only";
/// The `sub` of the one user this provider logs in.
pub const SUBJECT: &str = "alice";
/// In string values of [`Edit::Set`], [`Scenario::discovery_issuer`] and
/// [`AuthorizationIss::Other`], replaced by the provider's real issuer (unknown until it
/// listens), so a scenario can say "the issuer plus a trailing slash".
pub const ISSUER_PLACEHOLDER: &str = "{issuer}";
/// How long a hanging token endpoint waits: well beyond the BFF's provider timeout.
pub const HANG: Duration = Duration::from_secs(30);

/// One of the provider's fixed test keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyName {
    /// The signing key the provider starts with.
    First,
    /// The key it rotates to.
    Second,
    /// A key the provider never publishes: an attacker's.
    Attacker,
}

impl KeyName {
    /// The key's `kid` (the attacker's is never published, whatever it is called).
    pub fn kid(self) -> &'static str {
        match self {
            Self::First => "provider-key-1",
            Self::Second => "provider-key-2",
            Self::Attacker => "attacker-key",
        }
    }

    fn private_key(self) -> &'static RsaPrivateKey {
        static KEYS: OnceLock<[RsaPrivateKey; 3]> = OnceLock::new();
        // Fixed keys: generating RSA keys in a debug build takes seconds each.
        let keys = KEYS.get_or_init(|| {
            [KEY_FIRST, KEY_SECOND, KEY_ATTACKER].map(|pem| RsaPrivateKey::from_pkcs8_pem(pem).expect("test key"))
        });
        match self {
            Self::First => &keys[0],
            Self::Second => &keys[1],
            Self::Attacker => &keys[2],
        }
    }

    /// The public key as a JWK.
    fn jwk(self) -> Value {
        let public = self.private_key().to_public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid(),
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }
}

/// How the ID token is signed (or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Signature {
    /// RS256 with the provider's current signing key: the honest signature.
    #[default]
    Rs256,
    /// `alg: none` and an empty signature (`rp-id_token-sig-none`).
    None,
    /// RS256 with flipped signature bits (`rp-id_token-bad-sig-rs256`).
    Corrupted,
    /// RS256 by the attacker's key, under the header the provider would use.
    AttackerKey,
    /// A valid RS256 signature over the honest claims, sent with a payload whose `sub`
    /// was changed afterwards.
    PayloadSwapped,
    /// HS256 keyed with the client secret (what OIDC allows for MAC-based algorithms,
    /// and what anyone who learns the secret can forge).
    Hs256ClientSecret,
    /// HS256 keyed with the provider's public key in PEM (the algorithm-confusion attack
    /// on verifiers that let the token pick the algorithm).
    Hs256PublicKey,
}

/// What the JOSE header says in `kid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Kid {
    /// The `kid` of the signing key.
    #[default]
    Signing,
    /// No `kid` at all.
    Absent,
    /// This `kid`.
    Named(String),
}

/// A change to a JSON object the provider is about to send (ID-token claims or the token
/// response), applied in order after the honest values are filled in.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Sets a member (string values have [`ISSUER_PLACEHOLDER`] expanded).
    Set(&'static str, Value),
    /// Removes a member.
    Remove(&'static str),
}

/// The ID token the token endpoint hands out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdTokenSpec {
    /// How it is signed.
    pub signature: Signature,
    /// The header's `kid`.
    pub kid: Kid,
    /// Which key signs RS256 tokens; `None` means the provider's current signing key.
    pub key: Option<KeyName>,
    /// Changes to the honest claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nonce`, ...).
    pub edits: Vec<Edit>,
}

impl IdTokenSpec {
    /// An honest ID token.
    pub fn valid() -> Self {
        Self::default()
    }

    /// The same token, signed as `signature` says.
    pub fn signed(mut self, signature: Signature) -> Self {
        self.signature = signature;
        self
    }

    /// The same token with this header `kid`.
    pub fn kid(mut self, kid: Kid) -> Self {
        self.kid = kid;
        self
    }

    /// The same token, signed by `key` instead of the current signing key.
    pub fn key(mut self, key: KeyName) -> Self {
        self.key = Some(key);
        self
    }

    /// The same token with claim `name` set to `value`.
    pub fn set(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.edits.push(Edit::Set(name, value.into()));
        self
    }

    /// The same token without claim `name`.
    pub fn remove(mut self, name: &'static str) -> Self {
        self.edits.push(Edit::Remove(name));
        self
    }
}

/// What the token endpoint answers once client, code and PKCE verifier checked out.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenAnswer {
    /// 200 with an access token and this ID token, then [`Scenario::token_edits`].
    Tokens(IdTokenSpec),
    /// An OAuth error response (RFC 6749 §5.2).
    OAuthError {
        /// The HTTP status.
        status: u16,
        /// The `error` code.
        error: &'static str,
    },
    /// 500 with an HTML page.
    ServerError,
    /// 200, `Content-Type: application/json`, and a body that is not JSON.
    Garbage,
    /// No answer for [`HANG`].
    Hang,
    /// 307 to another endpoint of this provider (which counts the visits it gets).
    Redirect,
}

/// What the authorization response carries in `iss` (RFC 9207).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthorizationIss {
    /// The provider's issuer.
    #[default]
    Issuer,
    /// No `iss`.
    Absent,
    /// Another value (another provider's issuer, in a mix-up attack).
    Other(String),
}

/// Everything one test's provider does wrong (or right).
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The `issuer` of the discovery document; `None` is the provider's own.
    pub discovery_issuer: Option<String>,
    /// `authorization_response_iss_parameter_supported` in discovery.
    pub advertise_iss_parameter: bool,
    /// `code_challenge_methods_supported` in discovery.
    pub pkce_methods: Vec<&'static str>,
    /// Publish the second key next to the signing key (two keys in the JWKS).
    pub publish_both_keys: bool,
    /// `iss` of the authorization response.
    pub authorization_iss: AuthorizationIss,
    /// The token endpoint's answer.
    pub token: TokenAnswer,
    /// Changes to the token response JSON (with [`TokenAnswer::Tokens`]).
    pub token_edits: Vec<Edit>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::honest()
    }
}

impl Scenario {
    /// An honest provider.
    pub fn honest() -> Self {
        Self {
            discovery_issuer: None,
            advertise_iss_parameter: true,
            pkce_methods: vec!["S256"],
            publish_both_keys: false,
            authorization_iss: AuthorizationIss::Issuer,
            token: TokenAnswer::Tokens(IdTokenSpec::valid()),
            token_edits: Vec::new(),
        }
    }

    /// An honest provider handing out this ID token.
    pub fn id_token(spec: IdTokenSpec) -> Self {
        Self::honest().token_answer(TokenAnswer::Tokens(spec))
    }

    /// The same scenario with this token-endpoint answer.
    pub fn token_answer(mut self, answer: TokenAnswer) -> Self {
        self.token = answer;
        self
    }

    /// The same scenario with one more change to the token response.
    pub fn token_edit(mut self, edit: Edit) -> Self {
        self.token_edits.push(edit);
        self
    }

    /// The same scenario with this `iss` in the authorization response.
    pub fn authorization_iss(mut self, iss: AuthorizationIss) -> Self {
        self.authorization_iss = iss;
        self
    }

    /// The same scenario, advertising RFC 9207 `iss` or not.
    pub fn advertise_iss_parameter(mut self, advertised: bool) -> Self {
        self.advertise_iss_parameter = advertised;
        self
    }

    /// The same scenario with this `issuer` in discovery.
    pub fn discovery_issuer(mut self, issuer: &str) -> Self {
        self.discovery_issuer = Some(issuer.to_owned());
        self
    }

    /// The same scenario advertising these PKCE methods.
    pub fn pkce_methods(mut self, methods: &[&'static str]) -> Self {
        self.pkce_methods = methods.to_vec();
        self
    }

    /// The same scenario with two keys in the JWKS.
    pub fn publish_both_keys(mut self) -> Self {
        self.publish_both_keys = true;
        self
    }
}

/// What the authorization endpoint remembers about a code until it is redeemed.
struct Grant {
    code_challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
}

#[derive(Default)]
struct Counters {
    discovery: AtomicUsize,
    jwks: AtomicUsize,
    authorize: AtomicUsize,
    token: AtomicUsize,
    pkce_verified: AtomicUsize,
    pkce_failed: AtomicUsize,
    redirect_target: AtomicUsize,
}

struct Shared {
    issuer: String,
    scenario: Mutex<Scenario>,
    signing_key: Mutex<KeyName>,
    redirect_uri: Mutex<Option<String>>,
    grants: Mutex<HashMap<String, Grant>>,
    issued: Mutex<Vec<String>>,
    /// The `traceparent` of each token request, in order.
    token_traceparents: Mutex<Vec<Option<String>>>,
    counters: Counters,
}

/// A running faulty provider. Its server lives as long as the test's runtime.
#[derive(Clone)]
pub struct FaultyIdp {
    /// The issuer (`http://127.0.0.1:<port>`), also the base of every endpoint.
    pub issuer: String,
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock has failed already; keep serving.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Epoch seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock after 1970")
}

impl FaultyIdp {
    /// Starts a provider playing `scenario` on a free loopback port.
    pub async fn start(scenario: Scenario) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind faulty provider");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            scenario: Mutex::new(scenario),
            signing_key: Mutex::new(KeyName::First),
            redirect_uri: Mutex::new(None),
            grants: Mutex::new(HashMap::new()),
            issued: Mutex::new(Vec::new()),
            token_traceparents: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/token-elsewhere", post(redirect_target))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { issuer, shared }
    }

    /// The only redirect URI the authorization endpoint accepts.
    pub fn register_redirect_uri(&self, redirect_uri: &str) {
        *lock(&self.shared.redirect_uri) = Some(redirect_uri.to_owned());
    }

    /// Replaces the scenario (for the next requests).
    pub fn set_scenario(&self, scenario: Scenario) {
        *lock(&self.shared.scenario) = scenario;
    }

    /// Key rotation (`rp-key-rotation-op-sign-key`): from now on the provider signs with
    /// [`KeyName::Second`] and its JWKS publishes only that key.
    pub fn rotate_signing_key(&self) {
        *lock(&self.shared.signing_key) = KeyName::Second;
    }

    /// An ID token as the token endpoint would mint it for a login with `nonce`.
    pub fn mint_id_token(&self, spec: &IdTokenSpec, nonce: Option<&str>) -> String {
        self.shared.mint_id_token(spec, nonce)
    }

    /// Discovery documents served.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.counters.discovery.load(Ordering::SeqCst)
    }

    /// JWKS documents served.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.counters.jwks.load(Ordering::SeqCst)
    }

    /// Authorization requests received.
    pub fn authorization_requests(&self) -> usize {
        self.shared.counters.authorize.load(Ordering::SeqCst)
    }

    /// Requests to the token endpoint (whatever their outcome).
    pub fn token_requests(&self) -> usize {
        self.shared.counters.token.load(Ordering::SeqCst)
    }

    /// The `traceparent` header of each token request so far, in order.
    pub fn token_traceparents(&self) -> Vec<Option<String>> {
        lock(&self.shared.token_traceparents).clone()
    }

    /// Token requests whose PKCE verifier matched the challenge.
    pub fn pkce_verified(&self) -> usize {
        self.shared.counters.pkce_verified.load(Ordering::SeqCst)
    }

    /// Token requests whose PKCE verifier was missing or wrong.
    pub fn pkce_failed(&self) -> usize {
        self.shared.counters.pkce_failed.load(Ordering::SeqCst)
    }

    /// Requests that reached the target of the token endpoint's redirect (a client that
    /// never follows redirects sends none).
    pub fn redirect_target_hits(&self) -> usize {
        self.shared.counters.redirect_target.load(Ordering::SeqCst)
    }

    /// Every ID and access token the provider handed out, to check none reaches a browser.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.issued).clone()
    }
}

impl Shared {
    fn expand(&self, value: &str) -> String {
        value.replace(ISSUER_PLACEHOLDER, &self.issuer)
    }

    fn apply(&self, object: &mut serde_json::Map<String, Value>, edits: &[Edit]) {
        for edit in edits {
            match edit {
                Edit::Set(name, Value::String(s)) => {
                    object.insert((*name).to_owned(), Value::String(self.expand(s)));
                }
                Edit::Set(name, value) => {
                    object.insert((*name).to_owned(), value.clone());
                }
                Edit::Remove(name) => {
                    object.remove(*name);
                }
            }
        }
    }

    fn published_keys(&self) -> Vec<KeyName> {
        let signing = *lock(&self.signing_key);
        if lock(&self.scenario).publish_both_keys {
            vec![KeyName::First, KeyName::Second]
        } else {
            vec![signing]
        }
    }

    fn mint_id_token(&self, spec: &IdTokenSpec, nonce: Option<&str>) -> String {
        let now = unix_now();
        let mut claims = json!({
            "iss": self.issuer,
            "sub": SUBJECT,
            "aud": CLIENT_ID,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "name": "Alice Example",
            "email": "alice@example.com",
        })
        .as_object()
        .cloned()
        .expect("object");
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), Value::String(nonce.to_owned()));
        }
        self.apply(&mut claims, &spec.edits);

        let key = spec.key.unwrap_or_else(|| *lock(&self.signing_key));
        // The attacker signs with its own key but claims to be the provider's.
        let signer = if spec.signature == Signature::AttackerKey {
            KeyName::Attacker
        } else {
            key
        };
        let alg = match spec.signature {
            Signature::None => "none",
            Signature::Hs256ClientSecret | Signature::Hs256PublicKey => "HS256",
            _ => "RS256",
        };
        let mut header = json!({ "alg": alg, "typ": "JWT" });
        match &spec.kid {
            Kid::Signing => header["kid"] = json!(key.kid()),
            Kid::Absent => {}
            Kid::Named(kid) => header["kid"] = json!(kid),
        }

        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"));
        let signing_input = format!("{}.{}", encode(&header), encode(&Value::Object(claims.clone())));
        let signature = match spec.signature {
            Signature::None => Vec::new(),
            Signature::Rs256 | Signature::AttackerKey | Signature::PayloadSwapped => rs256(signer, &signing_input),
            Signature::Corrupted => {
                let mut signature = rs256(signer, &signing_input);
                let middle = signature.len() / 2;
                signature[middle] ^= 0x5a;
                signature
            }
            Signature::Hs256ClientSecret => hs256(CLIENT_SECRET.as_bytes(), &signing_input),
            Signature::Hs256PublicKey => {
                let pem = key
                    .private_key()
                    .to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .expect("pem");
                hs256(pem.as_bytes(), &signing_input)
            }
        };
        let signing_input = if spec.signature == Signature::PayloadSwapped {
            claims.insert("sub".into(), json!("admin"));
            format!("{}.{}", encode(&header), encode(&Value::Object(claims)))
        } else {
            signing_input
        };
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
        lock(&self.issued).push(token.clone());
        token
    }
}

fn rs256(key: KeyName, signing_input: &str) -> Vec<u8> {
    SigningKey::<Sha256>::new(key.private_key().clone())
        .sign(signing_input.as_bytes())
        .to_vec()
}

fn hs256(key: &[u8], signing_input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body.to_string()))
        .expect("response")
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(text))
        .expect("response")
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    json_response(status, &json!({ "error": error }))
}

fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

async fn discovery(State(idp): State<Arc<Shared>>) -> Response {
    idp.counters.discovery.fetch_add(1, Ordering::SeqCst);
    let scenario = lock(&idp.scenario).clone();
    let issuer = scenario
        .discovery_issuer
        .as_deref()
        .map_or_else(|| idp.issuer.clone(), |i| idp.expand(i));
    let base = &idp.issuer;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "grant_types_supported": ["authorization_code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "code_challenge_methods_supported": scenario.pkce_methods,
            "authorization_response_iss_parameter_supported": scenario.advertise_iss_parameter,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }),
    )
}

async fn jwks(State(idp): State<Arc<Shared>>) -> Response {
    idp.counters.jwks.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = idp.published_keys().into_iter().map(KeyName::jwk).collect();
    json_response(StatusCode::OK, &json!({ "keys": keys }))
}

/// Checks the request as an honest provider would, then redirects straight back.
async fn authorize(State(idp): State<Arc<Shared>>, uri: Uri) -> Response {
    idp.counters.authorize.fetch_add(1, Ordering::SeqCst);
    let params = form(uri.query().unwrap_or_default().as_bytes());
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let registered = lock(&idp.redirect_uri).clone();
    // Never redirect to an unregistered URI: answer an error page instead (RFC 6749 §4.1.2.1).
    if param("client_id") != CLIENT_ID || registered.as_deref() != Some(param("redirect_uri")) {
        return plain(StatusCode::BAD_REQUEST, "unknown client or redirect_uri");
    }
    let mut redirect = Url::parse(param("redirect_uri")).expect("registered URI parses");
    let valid = param("response_type") == "code"
        && param("code_challenge_method") == "S256"
        && !param("code_challenge").is_empty()
        && param("scope").split(' ').any(|s| s == "openid");
    {
        let mut query = redirect.query_pairs_mut();
        if valid {
            let code = bff::domain::secret::random_token(32);
            lock(&idp.grants).insert(
                code.clone(),
                Grant {
                    code_challenge: param("code_challenge").to_owned(),
                    redirect_uri: param("redirect_uri").to_owned(),
                    nonce: params.get("nonce").cloned(),
                },
            );
            query.append_pair("code", &code);
        } else {
            query.append_pair("error", "invalid_request");
        }
        if let Some(state) = params.get("state") {
            query.append_pair("state", state);
        }
        match &lock(&idp.scenario).authorization_iss {
            AuthorizationIss::Issuer => {
                query.append_pair("iss", &idp.issuer);
            }
            AuthorizationIss::Absent => {}
            AuthorizationIss::Other(iss) => {
                query.append_pair("iss", &idp.expand(iss));
            }
        }
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, redirect.as_str())
        .body(Body::empty())
        .expect("response")
}

/// `client_secret_basic` (RFC 6749 §2.3.1: form-encoded, then base64) or
/// `client_secret_post`.
fn client_credentials(headers: &HeaderMap, params: &HashMap<String, String>) -> Option<(String, String)> {
    let decode = |part: &str| {
        url::form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        return Some((decode(id), decode(secret)));
    }
    Some((params.get("client_id")?.clone(), params.get("client_secret")?.clone()))
}

/// Checks client, code, redirect URI and PKCE like an honest provider; then plays the
/// scenario.
async fn token(State(idp): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    idp.counters.token.fetch_add(1, Ordering::SeqCst);
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    lock(&idp.token_traceparents).push(traceparent);
    let params = form(&body);
    let authenticated =
        client_credentials(&headers, &params).is_some_and(|(id, secret)| id == CLIENT_ID && secret == CLIENT_SECRET);
    if !authenticated {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if params.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    // Codes are single-use: redeeming removes them.
    let grant = params.get("code").and_then(|code| lock(&idp.grants).remove(code));
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if params.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let verifier = params.get("code_verifier").map(String::as_str).unwrap_or_default();
    if verifier.is_empty() || URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.code_challenge {
        idp.counters.pkce_failed.fetch_add(1, Ordering::SeqCst);
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    idp.counters.pkce_verified.fetch_add(1, Ordering::SeqCst);

    let scenario = lock(&idp.scenario).clone();
    match scenario.token {
        TokenAnswer::Tokens(spec) => {
            let access_token = bff::domain::secret::random_token(32);
            lock(&idp.issued).push(access_token.clone());
            let id_token = idp.mint_id_token(&spec, grant.nonce.as_deref());
            let mut response = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "openid profile email",
                "id_token": id_token,
            })
            .as_object()
            .cloned()
            .expect("object");
            idp.apply(&mut response, &scenario.token_edits);
            json_response(StatusCode::OK, &Value::Object(response))
        }
        TokenAnswer::OAuthError { status, error } => oauth_error(StatusCode::from_u16(status).expect("status"), error),
        TokenAnswer::ServerError => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header(header::CONTENT_TYPE, "text/html")
            .body(Body::from("<h1>Internal Server Error</h1>"))
            .expect("response"),
        TokenAnswer::Garbage => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"access_token": "half a tok"#))
            .expect("response"),
        TokenAnswer::Hang => {
            tokio::time::sleep(HANG).await;
            plain(StatusCode::GATEWAY_TIMEOUT, "too late")
        }
        TokenAnswer::Redirect => Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, format!("{}/token-elsewhere", idp.issuer))
            .body(Body::empty())
            .expect("response"),
    }
}

/// Where the token endpoint's redirect points; a client that follows it re-posts the
/// code and the verifier here.
async fn redirect_target(State(idp): State<Arc<Shared>>) -> Response {
    idp.counters.redirect_target.fetch_add(1, Ordering::SeqCst);
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant")
}

/// A BFF configured for a [`FaultyIdp`], on the in-memory store.
pub struct FaultyApp {
    /// The BFF's origin (`http://127.0.0.1:<port>`).
    pub url: String,
    /// The context the server runs with.
    pub app: Arc<App>,
    /// The store, to count sessions.
    pub store: Arc<MemoryStore>,
    /// The provider.
    pub idp: FaultyIdp,
}

impl FaultyApp {
    /// A fresh browser (empty cookie jar) pointed at this BFF.
    pub fn browser(&self) -> BffBrowser {
        BffBrowser::new(&self.url, &self.idp.issuer)
    }
}

/// Starts a [`FaultyIdp`] playing `scenario` and a BFF configured for it (as
/// [`crate::app::spawn_app_with`] does for the shared provider).
pub async fn spawn_app_against(scenario: Scenario) -> FaultyApp {
    let idp = FaultyIdp::start(scenario).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind bff");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    idp.register_redirect_uri(&format!("{url}/auth/callback"));

    let env: HashMap<&str, String> = HashMap::from([
        ("BFF_ISSUER", idp.issuer.clone()),
        ("BFF_CLIENT_ID", CLIENT_ID.to_owned()),
        ("BFF_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("BFF_PUBLIC_URL", url.clone()),
        // Shared by every instance of one test, so they trust each other's cached documents.
        ("BFF_TOKEN_KEYS", crate::app::TEST_TOKEN_KEYS.to_owned()),
    ]);
    let config = Config::from_lookup(|name| env.get(name).cloned()).expect("test configuration");
    let store = Arc::new(MemoryStore::new());
    let dyn_store: Arc<dyn Store> = store.clone();
    let app = Arc::new(App::new(config, dyn_store).expect("app"));
    let server_app = app.clone();
    tokio::spawn(async move { bff_local::serve(listener, server_app, None, std::future::pending()).await });
    FaultyApp { url, app, store, idp }
}

const KEY_FIRST: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDCu9qb/lU6aB+K
ijKXRRAajPT5VTAwP4QbMljUoxclu57LOdqYJ+IkBKun6BPOfZvRfzxTRyTx8ouI
2yMcBqeMuCfKLq7CDZNBVex3lc/RMZ2e96FhKCbPo3xjobaQRZv4ID/1ylYvBaf4
gHI0UWigFLCHtf40ohLiQcW5NScw1cO6IP6v+FHoVRYTFQe4CwzK5wIpc3O7bQGc
ozJ5li18YdUuw3O2c8PIuXxNt2G6iKeWh1Jvn/OC8V3D6bpje8j2Iu1DKr6oUy/P
HNw6dxoXMgM0sCGv1oNOsdzFFUdN9sr8vh3yjUv4Er2JbR6L3chM2tdUxxNPo401
o++bc8tlAgMBAAECggEACRbhnlRhwAcqKbpHoD3uAX9A0/6A8E+Wp/pSoSI3q2A1
ikDaDi4WZR3+sSio/ANq6X1p4G06sTxj/PBVlDJPUccqvEoviAlALVWIYxCQEbCi
LdBbLQDFxv1XigL7VYKaRBulQKDAIxO9gmDkc8K1AnvUvZDmG6jQ/tSZGQr9GE9d
IQg+ZY9nN1JJNcYY75zphEuGsMM2R4omH7YR4YDvUutZ8NWOuD8cnHYdpGBz3TnW
AeiRnPy3uanoLvvZnr4IMHOefjeuUkWdDt/ZIinzAFENF6Of+MnuNEtTc7LjfmL1
XStEyjdBsxQ9LWMPCA5H26cvEXzSgI7AR5GaSHlIpQKBgQDs+LcIvfGpeozWdjPb
6wEHqVVeodvS7+9zH+9DlylrCAGRt63BGloYU/zIgoxxAg5wOyhQZt1aCJ7XS9DC
twzRqXPUPyjCMf9oidGbCh5Gwestr5WlABfrUFSv4CKGciezWc9raYUPMxm3ixxG
sz+6iO3D37/Nd5tXRwWP3UEY2wKBgQDSXuHuw8N5wRfKcgF/rhZlGnOuDNS3aUoI
g+I/F7/KwHmh7szCcW8K+qjxg4X43X4L3F52UDOaCB6m3YYhDJ6XBLqRScne1z4o
zzgBgG3RN/tQUL0f16vul2JNMhRhLkl23LUftPbWZDwz+BppSRE3B1/rJbOrfgv9
f/5gPRrAvwKBgCanQyPX581fQg3RZhAfOyHGyzgOas7zeDltIhgCVi0xNyBPt7Xh
2IRTXs5ODR552WURIThMLxr6gP5ZTYoVVa/1VgFu8/UJNsIUiO4jLmEYTIY9N8mc
REqL5eRySO9pO3ST17OLmLqr+SvpMwmNP33ry+zBWIXpVptb6FpZGr81AoGBAI9m
wlhB9gQPDiqgIElq4DU3HNfuQypriV3YmOctRz3sin1KDSYWsP0o9PT9FNwaEAwB
whqgfSxokIxqwT3SHmEPhiX3yLYwv1yONL1BUJqnsJaFEwabu8W+R/IbSy0bolR2
Crl8YC6w0SET5N0UQ7nhOw9N+fXSzFWXZE0yGgR9AoGBAOSDOFEwa6kvstrFxL99
PbZuWExgmHWRXse4MB5EsBvOYIHFRDBRknylvohmdRpPrRLYXUrsS+WI8jiB3pXd
tF2/Inl09Mb5gFS+QjMuXi9ZvYgGjx+0jthOEytOEwB/dq3JhLMvMmWsEFHnLmtE
Pi2rhamxZF9w3SZP4AqLfhol
-----END PRIVATE KEY-----";

const KEY_SECOND: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC2/s1KRUxAldoE
AoQPkCHPUj6NJ0FnCPY4hwjyz2ayD1UMJG9vDkRZCL6ZucX/SO9iCjBmhh85bgrX
EGKGtW1w7E/vO4UHPtWlWIRdxq6iUJ0wGdp1dmmUMtHYpLcvwa0oBsKJAn28ydqL
pDtGqbA3s/s18R5zSiwxWkzng7TUxTn5P9tMN7WMXXN1BRPtaWXvl2a82kpAqJOJ
XH3TMh9LDH61D9Bxwdn0PkADAkCBi8ZT1i7G745aGNS9obbKcqabfDxUUSaidKjY
StRnkhvPWUCYyeuQ7EP+gqcJzLYQXqCaSdETAWJry7VPWqgGzGPu4nePOt2IPqjN
KdjRYFz1AgMBAAECggEAEocm6vOsPkfN3KUSkO7TdYXKvojwdsmyAFQvxEHakIG7
5zBTNgfYRLl9btwf33KXhjIo52CCDdMF9vN6PlBlRc8vYrYAiJTEleqp8EK7EMUf
vSyI8WatVut0Ur6Oq5+s9AYHMU8WwwQfBA97TvLEXEd1UmdY4WxroA2YBsLPjtFD
SJaOXoE4JZxMY9oEsntJkuAEBy3sUW/6hI1Cn2Aa0gR1tilaEu8yR5Lz+619MZh0
FZGEwsYhVShh/5igkvbDbK+oXlLrsDMsMPyXpNtV/X2hucNVs5OTHSQY1iIHlLVG
eUDpan56RyZWAH8fOGw9VS01SobCbzEaKG3djThZQQKBgQDsAawwt3Ujk+4HDdJF
ZWdVHFnBPgGg3JUj8vmLZcFCdKKQCP2oTJMtD5GEXBmlLY1TNmLqJ7FNTqC7R6/k
Gq34sgxFRh7GQ/GdWSDtvRTeTeWbP/BNJQ2rPZ8KNyKp+1QKv2siALBDYvzRXycm
FqxWnqZ3tvTQ3+sgrcIOHKek4QKBgQDGf3aKMMaOsptd0F8/3HEZDkjbmNAT4Mt3
SHZ2QFnXhy2fU7M9cyl/UcViN7iZM/KAikgQi+sqysflnAmymn9az8wrhoSNWWfF
1XAN7GeQYgrpQKhpNAOHsVBVOml5hofx+9dY2Rs2xpSg0J5PFlwhjVMmG4RqhoJa
0//Ml9QmlQKBgQCuCAG4nuADT0d77iY7RC5xpYlOJXI/88kKjFaWA4ACiE2D1w1t
uKHi3ZMZvmyu0CthzD4emwx0jGGcGJ3MoBvfwzOnNbDl1R5rQFk21nJ4B4sj8384
8/TjbHpFpyipngp4LnVKyqUv2+PAZOFShe+ppC3vI3veNvCE1Xy+uUSqIQKBgBMD
xtE6Fus4hNWZzmYJsfPagHQ40UX2NMd6c46kX3bcBizLEdKDI6iEpsnf2JkkdsiF
dp3PKXnx7vA54FvxnN2QJljNDAmWVPCIn7FVwh38plrtzLQ3PVdUTwO7EruHfaJa
o6hpM8gtgbNeCKw+0hiMtzhhTm/97qLQyCJLMRF5AoGAZbFBjiaZ+/1DtxD4zK3w
QuwWJO2NQu2tj9XO9GcEB4LKBVh2THAlAFDuGk5kspd44W/fQ3eLFrEhK7U/coR3
0/iRfErCMGrjuFUD5rCcIQu4hkmU+Lnz1LQktTbZaXox0ssMJb8BlxmYF4EbSNO0
/xYHg76LwtklX4qNXn7a7nI=
-----END PRIVATE KEY-----";

const KEY_ATTACKER: &str = r"-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDl9bby6BaSN+ds
7vQN4oRyNnoZt1+pQxEpKOZsj74cOIqX1Q4J9L5oOTrafbkKAaIt8MvR3ahw2qxQ
X5tE+6SvytEtQuXs74kWgcqwYbg4ny4mZMqC9acJtFiV+rvmn0kUxKb6MeJnbG02
vE9thKqvo3KQLxIfs3dFddXHN1gY/eDAhWflUkP1BDVj+PKfzpous1hEMfcv9o9f
R4K7c6LffCa6CYWX8iGq37ovbCUAbPGiksMWhHxjWSqpwVpqXDeA7E7KNRXodfFK
yWmj8L6blvM9e0rQGcKujk3eOecfZXzXn4uC15Zekpf4JETjoMwlKiqr5MgWm7yq
SHntRkvBAgMBAAECggEABayK24XJYslRPKfNUUqWYOwO4xoNclndInvntzEfxeBj
EqZ9rqMbKWt6FCCK6ezxSu4yIg10uPe7gM5iTVdiygY4cMQbc/DTT0EbsD9YNVty
68/li3z5gC/y1jaGBhJGXxl2eXdoIiWm5AIaLDYpCph/L+dD0vdRmTiBJX9F1vRg
UKcW1UFroAwsdvUWbEqf9SfmpLdTWhjAnoCAjsUXNnruoOoBZr4OPR9ne11IrAk+
c9ErRDsQIRYRwWLWfZjUfu7IqXo88NoiZOivfVqvKtathQiLYBBi8DVMrUYHkq/T
721I7cIBJaQ4I2+M1fevF4I2bvgdHoBnk2AYqgPTbQKBgQD30UsBWFmL8mXE/XfY
6jL4vVVW8mE7YDfZwbYQm6WH1KyCSjzyx4RMn5R/bnRf778gFLMIgu2pQWEWO3JM
JBbzDV9BtFR5yCVut0mzwb5Dl1ui67SVIuNf3NeRSbraAD7HwQjSjlvcbEtc0Qt4
2XywswJmVZ67Hve8DJz0MkxTHQKBgQDtjXojwFf0e6IuZRI6okc774R9vCzIKAkR
CFrTh91OcXI6dm1SccfP9ziMQBc2gEuGG8Ap7xTbKs2bE0GUP87hz/w4JRFHwUBg
6XdN5bdDGszLTZgyKii7LKypkikAM2QxUNAmTY2HIvDqAjQuh/8p1G9xw4qsWrue
ToSYSnD19QKBgGaQpK5l1onpRN2G2jdYlsgD9HIL1towNG1XkvbEtHnHN66k8xy4
HrVnxpoHKPsbysqIRqDbL2nBuWDuMZv5w9XMTwRukhflEjkEeuh+4zQuTKrdStv+
mIRwbnefQEpBl7os1m3upW5RE8/SZSEbQlQPgorAHPXtFzMpNTyMJLKxAoGBANsC
NVoiqbRwC3zkl+LQ3AXI9AiL5Wl/Z6R5ZGti9kis1NhLeMyqs8HrNgovyHbp3zc7
/HVsw3iwRLC1Fx/bmBueCfWlTwIti/INLH33zHakjazd0/Rj4/t025bWdtCFkNja
nZzCoTm2oA/Oildf8IKbJUfoNMBkQldYImzZLL3FAoGABdGANmTP1/U5Mmi8sjzq
m86S7f4grbZauotJHqFQ8LUqKHGl+vGdW1+5WRJ/Ekoo26MNmWiIkwtb/jlEjyzW
T9d1ig3Bef1S8KhJLu8MpeC6L9TpNVXngDUnsF/L9YC+Ljx0r0uIM9NEPp4YtDvq
8HVHw5leYd7xCsjeI8VWOxg=
-----END PRIVATE KEY-----";
