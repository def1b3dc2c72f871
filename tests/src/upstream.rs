//! A recording resource API: remembers every request it gets and answers with an echo.
//! `/slow` answers after 3 s (timeouts), `/bytes` echoes the body as binary.
//!
//! Streaming answers, for the proxy's streaming tests:
//! - `/big/<n>`: `n` bytes of [`big_chunk`]s with `Content-Length`, generated as they are
//!   sent (never held whole);
//! - `/pause`: [`PAUSE_FIRST`] at once, then [`PAUSE_REST`] after [`PAUSE`];
//! - `/broken` and `/broken-chunked`: [`BROKEN_SENT`] bytes of a longer body, then the
//!   connection breaks (with a `Content-Length` of [`BROKEN_LENGTH`], or chunked);
//! - `/file`: [`FILE_LENGTH`] bytes with an `ETag` and `Last-Modified`, answering `HEAD`,
//!   `Range: bytes=a-b` (206) and `If-None-Match` (304) as a file server does;
//! - `/no-content`: 204 with an `ETag`.
//!
//! `/sink` takes request bodies of any size as they stream in, never holding them: it
//! keeps their length, hash and the time their first byte came (see [`Sunk`]), and
//! answers with the length and hash.
//!
//! With [`Upstream::require_dpop`] it is a DPoP resource server (RFC 9449 §7): a call
//! must carry `Authorization: DPoP <token>` and one `DPoP` proof whose ES256 signature
//! verifies with its own `jwk`, with `typ: dpop+jwt`, `htm` the method, `htu` the URL
//! called (no query), `ath` the token's hash, a recent `iat` and a `jti` never seen
//! before; with [`Upstream::demand_dpop_nonce`] also the nonce it hands out (401
//! `use_dpop_nonce` with a `DPoP-Nonce` header otherwise). Each verdict is recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt as _};

/// The size of one chunk of `/big/<n>`.
pub const BIG_CHUNK: usize = 1024 * 1024;

/// The first part of `/pause`'s body, sent with the head.
pub const PAUSE_FIRST: &[u8] = b"first chunk, before the pause\n";
/// The rest of `/pause`'s body, sent after [`PAUSE`].
pub const PAUSE_REST: &[u8] = b"the rest, after the pause\n";
/// How long `/pause` stays silent between its two parts.
pub const PAUSE: Duration = Duration::from_secs(3);

/// The length `/broken` announces.
pub const BROKEN_LENGTH: usize = 1024 * 1024;
/// How many bytes `/broken` and `/broken-chunked` send before breaking off.
pub const BROKEN_SENT: usize = 256 * 1024;

/// The length of `/file`.
pub const FILE_LENGTH: usize = 1000;
/// The `ETag` of `/file`.
pub const FILE_ETAG: &str = "\"file-v1\"";
const FILE_LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";

/// Chunk `index` of `/big/<n>`: a fixed pseudo-random block with the index in its first
/// eight bytes, so a misplaced, repeated or lost chunk changes the hash.
pub fn big_chunk(index: u64) -> Bytes {
    static BLOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let block = BLOCK.get_or_init(|| {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        (0..BIG_CHUNK)
            .map(|_| {
                // xorshift64: cheap, deterministic, not compressible.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    });
    let mut chunk = block.clone();
    chunk[..8].copy_from_slice(&index.to_le_bytes());
    Bytes::from(chunk)
}

/// The chunks of an `n`-byte `/big/<n>` body, made one at a time.
pub fn big_chunks(n: u64) -> impl futures_util::Stream<Item = Bytes> + Send {
    let count = n.div_ceil(BIG_CHUNK as u64);
    stream::iter(0..count).map(move |i| {
        let chunk = big_chunk(i);
        let left = (n - i * BIG_CHUNK as u64).min(BIG_CHUNK as u64) as usize;
        chunk.slice(..left)
    })
}

/// The SHA-256 of `/big/<n>`'s body, computed the same way without any server.
pub async fn big_body_sha256(n: u64) -> Vec<u8> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut chunks = std::pin::pin!(big_chunks(n));
    while let Some(chunk) = chunks.next().await {
        hash.update(&chunk);
    }
    hash.finish().as_ref().to_vec()
}

/// Byte `i` of `/file`.
fn file_body() -> Vec<u8> {
    (0..FILE_LENGTH).map(|i| (i % 251) as u8).collect()
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Seen {
    /// Every value of header `name`.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The bearer token sent, if exactly one `Authorization: Bearer` header came.
    pub fn bearer(&self) -> Option<&str> {
        match self.header("authorization").as_slice() {
            [one] => one.strip_prefix("Bearer "),
            _ => None,
        }
    }
}

/// What `/sink` made of one request body.
#[derive(Debug, Clone)]
pub struct Sunk {
    /// When its first byte came.
    pub first_byte_at: Option<Instant>,
    /// The `Content-Length` it came with, if any.
    pub content_length: Option<String>,
    /// Its length and SHA-256 when it arrived whole; why not otherwise.
    pub outcome: Result<(u64, Vec<u8>), String>,
}

/// The running upstream and what it saw.
#[derive(Clone)]
pub struct Upstream {
    /// Base URL (with a path, to test that calls stay below it).
    pub base: String,
    /// Requests received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    sunk: Arc<Mutex<Vec<Sunk>>>,
    rules: Arc<Mutex<Rules>>,
}

#[derive(Default)]
struct Rules {
    rejected: Vec<String>,
    reject_all: bool,
    dpop: Option<DpopRules>,
}

#[derive(Default)]
struct DpopRules {
    nonce: Option<String>,
    jtis: std::collections::HashSet<String>,
    verdicts: Vec<DpopVerdict>,
}

/// What the DPoP resource server made of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopVerdict {
    /// `Ok(jkt)` (the thumbprint of the proof's key) or why the call was refused.
    pub outcome: Result<String, String>,
    /// The proof's `nonce`, if any.
    pub nonce: Option<String>,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    sunk: Arc<Mutex<Vec<Sunk>>>,
    rules: Arc<Mutex<Rules>>,
}

impl Upstream {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Mutex::new(Rules::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let base = format!("http://{}/v1/", listener.local_addr().expect("addr"));
        let sunk = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            seen: seen.clone(),
            sunk: sunk.clone(),
            rules: rules.clone(),
        };
        let router = axum::Router::new().fallback(record).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            seen,
            sunk,
            rules,
        }
    }

    /// Answers 401 to calls bearing `token` from now on.
    pub fn reject(&self, token: &str) {
        self.rules.lock().expect("lock").rejected.push(token.to_owned());
    }

    /// Answers 401 to every call from now on.
    pub fn reject_all(&self) {
        self.rules.lock().expect("lock").reject_all = true;
    }

    /// From now on, a DPoP resource server (see the module's header).
    pub fn require_dpop(&self) {
        self.rules.lock().expect("lock").dpop = Some(DpopRules::default());
    }

    /// From now on, proofs must carry `nonce` (implies [`Self::require_dpop`]).
    pub fn demand_dpop_nonce(&self, nonce: &str) {
        let mut rules = self.rules.lock().expect("lock");
        rules.dpop.get_or_insert_with(DpopRules::default).nonce = Some(nonce.to_owned());
    }

    /// The DPoP verdicts so far, in order.
    pub fn dpop_verdicts(&self) -> Vec<DpopVerdict> {
        let rules = self.rules.lock().expect("lock");
        rules.dpop.as_ref().map(|d| d.verdicts.clone()).unwrap_or_default()
    }

    /// Everything seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The bodies `/sink` has finished with (whole or broken off), in order.
    pub fn sunk(&self) -> Vec<Sunk> {
        self.sunk.lock().expect("lock").clone()
    }
}

/// `/sink`: reads the body as it streams in, keeping only its length and hash.
async fn sink(shared: &Shared, parts: &Parts, body: Body) -> Response {
    let mut chunks = body.into_data_stream();
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut length, mut first_byte_at) = (0u64, None);
    let outcome = loop {
        match chunks.next().await {
            Some(Ok(chunk)) => {
                first_byte_at = first_byte_at.or_else(|| (!chunk.is_empty()).then(Instant::now));
                length += chunk.len() as u64;
                hash.update(&chunk);
            }
            Some(Err(e)) => break Err(e.to_string()),
            None => break Ok((length, hash.finish().as_ref().to_vec())),
        }
    };
    let content_length = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = match &outcome {
        Ok((length, sha256)) => {
            let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "length": length, "sha256": hex })
                .to_string()
                .into_response()
        }
        Err(why) => (StatusCode::BAD_REQUEST, why.clone()).into_response(),
    };
    shared.sunk.lock().expect("lock").push(Sunk {
        first_byte_at,
        content_length,
        outcome,
    });
    answer
}

async fn record(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.uri.path().ends_with("/sink") {
        return sink(&shared, &parts, body).await;
    }
    let body: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let entry = Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("<binary>").to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    let bearer = entry.bearer().map(str::to_owned);
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let dpop_refusal = {
        let mut rules = shared.rules.lock().expect("lock");
        match rules.dpop.as_mut() {
            Some(dpop) => check_dpop(dpop, &entry, &format!("http://{host}{}", parts.uri.path())),
            None => None,
        }
    };
    shared.seen.lock().expect("lock").push(entry);
    if let Some(refusal) = dpop_refusal {
        return refusal;
    }
    let refused = {
        let rules = shared.rules.lock().expect("lock");
        rules.reject_all || bearer.is_some_and(|b| rules.rejected.contains(&b))
    };
    if refused {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer error=\"invalid_token\"")],
        )
            .into_response();
    }
    if let Some(answer) = streaming(&parts) {
        return answer;
    }
    let path = parts.uri.path();
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if path.ends_with("/bytes") {
        return (
            [
                ("content-type", "application/octet-stream"),
                ("set-cookie", "upstream=1"),
            ],
            body,
        )
            .into_response();
    }
    let echo = serde_json::json!({ "method": parts.method.as_str(), "uri": parts.uri.to_string() });
    (
        [
            ("content-type", "application/json"),
            ("set-cookie", "upstream=1"),
            ("x-upstream", "yes"),
        ],
        echo.to_string(),
    )
        .into_response()
}

/// The streaming answers (see the module's header), or `None` for another path.
fn streaming(parts: &Parts) -> Option<Response> {
    let path = parts.uri.path();
    let octets = [("content-type", "application/octet-stream")];
    if let Some(n) = path.rsplit_once("/big/").and_then(|(_, n)| n.parse::<u64>().ok()) {
        let body = Body::from_stream(big_chunks(n).map(Ok::<_, std::io::Error>));
        return Some((octets, [("content-length", n.to_string())], body).into_response());
    }
    if path.ends_with("/pause") {
        let parts =
            stream::iter([(Duration::ZERO, PAUSE_FIRST), (PAUSE, PAUSE_REST)]).then(|(wait, part)| async move {
                tokio::time::sleep(wait).await;
                Ok::<_, std::io::Error>(Bytes::from_static(part))
            });
        let length = (PAUSE_FIRST.len() + PAUSE_REST.len()).to_string();
        return Some((octets, [("content-length", length)], Body::from_stream(parts)).into_response());
    }
    if path.ends_with("/broken") || path.ends_with("/broken-chunked") {
        // The part is sent (head included) before the connection breaks, as when the
        // upstream process dies mid-body.
        let sent = stream::iter([true, false]).then(|first| async move {
            if first {
                Ok(Bytes::from(vec![b'x'; BROKEN_SENT]))
            } else {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err(std::io::Error::other("killed"))
            }
        });
        let mut answer = (octets, Body::from_stream(sent)).into_response();
        if path.ends_with("/broken") {
            let length = axum::http::HeaderValue::from(BROKEN_LENGTH);
            answer.headers_mut().insert("content-length", length);
        }
        return Some(answer);
    }
    if path.ends_with("/file") {
        return Some(file(parts));
    }
    if path.ends_with("/no-content") {
        return Some((StatusCode::NO_CONTENT, [("etag", FILE_ETAG)]).into_response());
    }
    None
}

/// `/file`, as a file server answers `HEAD`, `Range` and `If-None-Match`.
fn file(parts: &Parts) -> Response {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let validators = [
        ("etag", FILE_ETAG),
        ("last-modified", FILE_LAST_MODIFIED),
        ("accept-ranges", "bytes"),
        ("content-type", "application/octet-stream"),
    ];
    if header("if-none-match") == Some(FILE_ETAG) {
        return (StatusCode::NOT_MODIFIED, validators).into_response();
    }
    let body = file_body();
    let range = header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .filter(|(a, b)| a <= b && *b < FILE_LENGTH);
    let (status, bytes, content_range) = match range {
        Some((a, b)) => (
            StatusCode::PARTIAL_CONTENT,
            body[a..=b].to_vec(),
            Some(format!("bytes {a}-{b}/{FILE_LENGTH}")),
        ),
        None => (StatusCode::OK, body, None),
    };
    let length = bytes.len().to_string();
    let body = if parts.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut answer = (status, validators, [("content-length", length)], body).into_response();
    if let Some(range) = content_range.and_then(|r| axum::http::HeaderValue::from_str(&r).ok()) {
        answer.headers_mut().insert("content-range", range);
    }
    answer
}

/// Checks one call as a DPoP resource server; the refusal to answer, if any.
fn check_dpop(rules: &mut DpopRules, seen: &Seen, htu: &str) -> Option<Response> {
    let proofs = seen.header("dpop");
    let proof_nonce = proofs
        .first()
        .and_then(|p| p.split('.').nth(1))
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&crate::b64::decode(c)).ok())
        .and_then(|c| c["nonce"].as_str().map(str::to_owned));
    let outcome = verify_dpop(rules, seen, &proofs, htu);
    rules.verdicts.push(DpopVerdict {
        outcome: outcome.clone(),
        nonce: proof_nonce,
    });
    let refuse = |error: &str, nonce: Option<&str>| {
        let mut answer = (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", format!("DPoP error=\"{error}\", algs=\"ES256\""))],
        )
            .into_response();
        if let Some(nonce) = nonce.and_then(|n| axum::http::HeaderValue::from_str(n).ok()) {
            answer.headers_mut().insert("dpop-nonce", nonce);
        }
        answer
    };
    match outcome {
        Ok(_) => None,
        Err(why) if why == "use_dpop_nonce" => Some(refuse("use_dpop_nonce", rules.nonce.as_deref())),
        Err(_) => Some(refuse("invalid_dpop_proof", None)),
    }
}

/// The proof's key thumbprint when the call is a valid DPoP call, else why not.
fn verify_dpop(rules: &mut DpopRules, seen: &Seen, proofs: &[&str], htu: &str) -> Result<String, String> {
    use sha2::Digest as _;
    let authorization = match seen.header("authorization").as_slice() {
        [one] => one.to_string(),
        _ => return Err("not exactly one Authorization header".into()),
    };
    let token = authorization.strip_prefix("DPoP ").ok_or_else(|| {
        format!(
            "not a DPoP Authorization: {}",
            authorization.split(' ').next().unwrap_or("")
        )
    })?;
    let [proof] = proofs else {
        return Err(format!("{} DPoP headers", proofs.len()));
    };
    let parts: Vec<&str> = proof.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("the proof is not a compact JWS".into());
    };
    let json = |part: &str| -> Result<serde_json::Value, String> {
        serde_json::from_slice(&crate::b64::decode(part)).map_err(|e| e.to_string())
    };
    let (header_json, claims) = (json(header)?, json(claims)?);
    if header_json["typ"] != "dpop+jwt" || header_json["alg"] != "ES256" {
        return Err("typ or alg".into());
    }
    let jwk = &header_json["jwk"];
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" || jwk.get("d").is_some() {
        return Err("jwk".into());
    }
    let coordinate = |name: &str| crate::b64::decode(jwk[name].as_str().unwrap_or_default());
    let point = [&[4u8][..], &coordinate("x"), &coordinate("y")].concat();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(
            format!("{header}.{claims_part}", claims_part = parts[1]).as_bytes(),
            &crate::b64::decode(signature),
        )
        .map_err(|_| "signature".to_owned())?;
    if claims["htm"] != seen.method.as_str() {
        return Err("htm".into());
    }
    if claims["htu"] != htu {
        return Err(format!("htu {} != {htu}", claims["htu"]));
    }
    let ath = crate::b64::encode(&sha2::Sha256::digest(token.as_bytes()));
    if claims["ath"] != ath.as_str() {
        return Err("ath".into());
    }
    let now = crate::faulty_idp::unix_now();
    if claims["iat"].as_i64().is_none_or(|iat| (iat - now).abs() > 60) {
        return Err("iat".into());
    }
    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
    if jti.is_empty() || !rules.jtis.insert(jti) {
        return Err("jti replayed".into());
    }
    if let Some(nonce) = &rules.nonce
        && claims["nonce"].as_str() != Some(nonce.as_str())
    {
        return Err("use_dpop_nonce".into());
    }
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#, jwk["x"], jwk["y"]);
    Ok(crate::b64::encode(&sha2::Sha256::digest(canonical.as_bytes())))
}
