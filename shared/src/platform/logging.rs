//! Log output: JSON lines in Lambda, readable lines locally, the one line a failed
//! start-up leaves, and the keyed hash by which a log line names a user.
//!
//! Every JSON line carries its `timestamp` (RFC 3339, UTC) and, when written while a
//! request is handled, that request's `request_id` at the top level, so one person's
//! request can be followed through every line it caused.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha2::Sha256;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::platform::seal::Sealer;

/// Name of the span a request is handled in; its fields join every line written in it.
pub const REQUEST_SPAN: &str = "request";

/// [`user_hash`]'s HMAC, keyed once per process from the token keys (else a random key):
/// each hash starts from a copy of it instead of keying HMAC anew.
static USER_HASH_MAC: OnceLock<Hmac<Sha256>> = OnceLock::new();

/// Keys [`user_hash`] with `sealer`'s log key. Process-wide, as the log subscriber is:
/// the lines that name a user are written deep in the services, which hold no keys.
/// Only the first call counts; a process that never calls it hashes with a random key.
pub fn key_user_hash(sealer: &Sealer) {
    let _ = USER_HASH_MAC.set(keyed_mac(&sealer.log_key()));
}

/// The user `sub` as log lines name it: HMAC-SHA256 with a key derived from the token
/// keys, base64url. The same user has the same hash in every function sharing the keys;
/// unlike a plain SHA-256, it cannot be recomputed from a guessed `sub` without the keys.
pub fn user_hash(sub: &str) -> String {
    let kept = || USER_HASHES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(hash) = kept().get(sub) {
        return hash.clone();
    }
    let hash = keyed_user_hash(sub);
    let mut kept = kept();
    if kept.len() >= USER_HASHES_KEPT {
        kept.clear();
    }
    kept.insert(sub.to_owned(), hash.clone());
    hash
}

/// The hashes [`user_hash`] computed, by `sub`: a user's every call names them, and HMAC
/// is most of the cost of an access line's user field. At most [`USER_HASHES_KEPT`];
/// emptied when full. The key never changes once a hash is made, so neither do they.
static USER_HASHES: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Mutex::default);

/// How many users' hashes [`USER_HASHES`] keeps.
const USER_HASHES_KEPT: usize = 1024;

fn keyed_user_hash(sub: &str) -> String {
    let mut mac = USER_HASH_MAC
        .get_or_init(|| {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            keyed_mac(&key)
        })
        .clone();
    mac.update(sub.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn keyed_mac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as hmac::Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Logs as JSON lines (what CloudWatch expects), level from `RUST_LOG` (default `info`).
pub fn init_tracing_json() {
    let lines = tracing_subscriber::fmt::layer()
        .event_format(SpanFieldsOnTop(
            tracing_subscriber::fmt::format()
                .json()
                .with_current_span(true)
                .with_span_list(false),
        ))
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new());
    let _ = tracing_subscriber::registry().with(log_filter()).with(lines).try_init();
}

/// The JSON line of tracing-subscriber, with the fields of the current span (the
/// request's id) moved to the top level, where a log query finds them on every line.
struct SpanFieldsOnTop(Format<Json, SystemTime>);

impl<S, N> FormatEvent<S, N> for SpanFieldsOnTop
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str::<serde_json::Value>(&line) else {
            return writer.write_str(&line);
        };
        if let Some(serde_json::Value::Object(span)) = object.remove("span") {
            for (name, value) in span.into_iter().filter(|(name, _)| name != "name") {
                object.entry(name).or_insert(value);
            }
        }
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

/// Human-readable logs for local runs; colours only when the output is a terminal, so a
/// log file holds plain text.
pub fn init_tracing_pretty() {
    use std::io::IsTerminal as _;
    let lines = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = tracing_subscriber::registry().with(log_filter()).with(lines).try_init();
}

/// The filter `RUST_LOG` names: a level (`debug`), per-target levels (`bff=debug,warn`),
/// or `info` when unset or unreadable. Targets and levels only, no span or field
/// filters: their regular-expression engine would add a quarter of a megabyte to every
/// function's package.
fn log_filter() -> Targets {
    parse_log_filter(std::env::var("RUST_LOG").ok().as_deref())
}

fn parse_log_filter(spec: Option<&str>) -> Targets {
    spec.and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Prints `error` as the one line a failed start-up leaves, and exits non-zero.
pub fn exit_on_startup_error(error: impl std::fmt::Display) -> ! {
    eprintln!("bff: configuration error: {error}");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_filter_takes_levels_and_targets_and_falls_back_to_info() {
        use tracing::Level;
        use tracing_subscriber::filter::LevelFilter;
        let at = |spec, target, level| parse_log_filter(spec).would_enable(target, &level);
        assert!(at(None, "bff", Level::INFO) && !at(None, "bff", Level::DEBUG));
        assert!(at(Some("debug"), "access", Level::DEBUG));
        assert!(!at(Some("warn"), "access", Level::INFO) && at(Some("warn"), "bff", Level::WARN));
        assert!(at(Some("warn,bff=debug"), "bff::service", Level::DEBUG));
        assert!(!at(Some("warn,bff=debug"), "hyper", Level::INFO));
        // A filter it cannot read is not silence: the default applies.
        assert_eq!(
            parse_log_filter(Some("bff=loud")).default_level(),
            Some(LevelFilter::INFO)
        );
    }

    #[test]
    fn users_are_hashed_with_a_key() {
        let plain = crate::domain::secret::hash("alice");
        assert_ne!(user_hash("alice"), plain);
        assert_ne!(user_hash("alice"), "alice");
        assert_eq!(user_hash("alice"), user_hash("alice"));
        assert_ne!(user_hash("alice"), user_hash("bob"));
    }

    #[test]
    fn kept_hashes_are_the_keyed_ones_and_bounded() {
        let first = user_hash("carol");
        assert_eq!(user_hash("carol"), first, "served from the kept ones");
        assert_eq!(keyed_user_hash("carol"), first, "the same as computed afresh");
        for i in 0..(2 * USER_HASHES_KEPT) {
            let sub = format!("user-{i}");
            assert_eq!(user_hash(&sub), keyed_user_hash(&sub));
        }
        let kept = USER_HASHES.lock().map(|k| k.len()).unwrap_or_default();
        assert!(kept <= USER_HASHES_KEPT, "{kept} hashes kept");
    }
}
