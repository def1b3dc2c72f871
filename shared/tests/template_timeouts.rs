//! Every function's timeout in template.yaml covers the worst path its code can take,
//! summed from the code's own timeouts, so Lambda never stops a function between the
//! provider's answer and the store write that keeps it (a rotated refresh token).
//! Changing a timeout in the code, or lowering one in the template, fails this test
//! until the other follows. README.md ("Function timeouts") shows the same sums.
//!
//! The template is read by a small indentation-based reader (the workspace has no YAML
//! parser); it fails loudly on a template shape it does not know.

use std::time::Duration;

use bff::oidc::{JWKS_REFETCH_INTERVAL, PROVIDER_TIMEOUT};
use bff::service::backchannel::PARALLEL_DELETES;
use bff::service::refresh::{LEASE_MS, WAIT_BEYOND_LEASE, WAIT_POLL, WRITE_ATTEMPTS, WRITE_MARGIN_MS};
use bff::store::dynamodb::STORE_CALL_TIMEOUT;

/// One store call, its retries included.
const STORE: Duration = STORE_CALL_TIMEOUT;
/// One provider call.
const PROVIDER: Duration = PROVIDER_TIMEOUT;
/// Room for what is not a wait on the network: the handler's own work, the runtime's.
const SLACK: Duration = Duration::from_secs(2);
/// Sessions of one user a back-channel logout ends within its timeout (the provider
/// retries a logout that did not finish).
const BACKCHANNEL_SESSIONS: usize = 64;

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).expect("a positive duration"))
}

/// A provider document (discovery, JWKS): the store's shared copy, else the provider's,
/// then stored for the other instances.
fn document() -> Duration {
    STORE + PROVIDER + STORE
}

/// Discovery, once per process (a failed one is tried again by its next user).
fn discovery() -> Duration {
    document()
}

/// The keys that check an ID or logout token: the JWKS, then one refetch for a `kid` it
/// does not know, at most one refetch interval after the last fetch.
fn keys() -> Duration {
    document() + JWKS_REFETCH_INTERVAL + PROVIDER + STORE
}

/// `GET /auth/login`: discovery, the pushed authorization request (RFC 9126), then the
/// transaction written.
fn login() -> Duration {
    discovery() + PROVIDER + STORE
}

/// `GET /auth/callback`: the transaction taken, discovery (the `iss` check), the code
/// exchange, the ID token's keys, the session written, and up to two earlier sessions
/// of this browser ended.
fn callback() -> Duration {
    STORE + discovery() + PROVIDER + keys() + STORE + 2 * STORE
}

/// `GET /auth/me` (the session read, then deleted or slid) or `POST /auth/logout` (the
/// session deleted, then revocation and the logout URL, each needing discovery: a
/// failed discovery is tried by both).
fn session() -> Duration {
    let me = 2 * STORE;
    let logout = STORE + (discovery() + PROVIDER).max(2 * discovery());
    me.max(logout)
}

/// `POST /auth/backchannel-logout` ending `sessions` sessions: the logout token's keys,
/// its first use recorded, the index read, each session read and deleted (a batch at a
/// time), and on a failure the first use forgotten.
fn backchannel(sessions: usize) -> Duration {
    let batches = u32::try_from(sessions.div_ceil(PARALLEL_DELETES)).expect("a small count");
    discovery() + keys() + STORE + STORE + batches * 2 * STORE + STORE
}

/// A refresh, from the first look at the lease to the token in hand: waiting out another
/// holder until the caller gives up; discovery and keys made ready; then under its own
/// lease the lease write, the grant and the token write, retried until shortly before the
/// lease lapses (a write begun just before that may still run a store call); the write's
/// re-reads when idle slides interleave; and the refreshed ID token's keys and claims.
fn refresh() -> Duration {
    let wait = millis(LEASE_MS) + WAIT_BEYOND_LEASE + WAIT_POLL + STORE;
    let prepare = discovery() + document();
    let under_lease = millis(LEASE_MS - WRITE_MARGIN_MS) + STORE;
    let conflicts = u32::try_from(WRITE_ATTEMPTS).expect("a small count") * 2 * STORE;
    let id_token = keys() + STORE;
    wait + prepare + under_lease + conflicts + id_token
}

/// `/api/*` with an upstream timeout of `upstream`: the session read and slid, at most
/// one refresh (a forced one after an upstream 401 is throttled when the first call
/// refreshed), the upstream call, and after a 401 the session read again and the
/// upstream called once more.
fn proxy(upstream: Duration) -> Duration {
    2 * STORE + refresh() + upstream + STORE + upstream
}

/// Whole seconds that cover `budget` and the slack.
fn needed(budget: Duration) -> u64 {
    (budget + SLACK).as_secs_f64().ceil() as u64
}

#[test]
fn function_timeouts_cover_the_worst_path_of_their_code() {
    let template = Template::read();
    let cases = [
        ("LoginFunction", login()),
        ("CallbackFunction", callback()),
        ("SessionFunction", session()),
        ("BackchannelLogoutFunction", backchannel(BACKCHANNEL_SESSIONS)),
    ];
    let mut functions: Vec<String> = template
        .children(&["Resources"])
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| template.scalar(&["Resources", name, "Type"]) == "AWS::Serverless::Function")
        .collect();
    let mut known: Vec<&str> = cases.iter().map(|(f, _)| *f).chain(["ProxyFunction"]).collect();
    functions.sort();
    known.sort_unstable();
    assert_eq!(functions, known, "every function has a budget here");

    let mut short = Vec::new();
    for (function, budget) in cases {
        let timeout = template.function_timeout(function);
        let timeout: u64 = timeout
            .parse()
            .unwrap_or_else(|_| panic!("{function}: Timeout {timeout:?} is not a number of seconds"));
        if timeout < needed(budget) {
            short.push(format!("{function}: Timeout {timeout} s < {} s needed", needed(budget)));
        }
    }

    // The proxy's timeout follows the upstream timeout through a mapping.
    assert_eq!(
        template.function_timeout("ProxyFunction"),
        "!FindInMap [ProxyTimeout, !Ref UpstreamTimeoutSecs, Seconds]"
    );
    let allowed = template.scalar(&["Parameters", "UpstreamTimeoutSecs", "AllowedValues"]);
    let allowed: Vec<u64> = allowed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim().trim_matches('"').parse().expect("an allowed upstream timeout"))
        .collect();
    assert!(!allowed.is_empty(), "UpstreamTimeoutSecs has allowed values");
    let mapping = template.children(&["Mappings", "ProxyTimeout"]);
    for upstream in allowed {
        let entry = mapping
            .iter()
            .find(|(key, _)| key.trim_matches('"') == upstream.to_string())
            .unwrap_or_else(|| panic!("ProxyTimeout has no entry for {upstream}"));
        let seconds: u64 = entry
            .1
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim()
            .strip_prefix("Seconds:")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("ProxyTimeout {upstream}: {:?} is not {{ Seconds: N }}", entry.1));
        let budget = needed(proxy(Duration::from_secs(upstream)));
        if seconds < budget {
            short.push(format!("ProxyTimeout {upstream}: {seconds} s < {budget} s needed"));
        }
    }
    assert!(short.is_empty(), "function timeouts too short:\n{}", short.join("\n"));
}

#[test]
fn budgets_grow_with_the_code_s_own_timeouts() {
    // The sums above are made of the constants, not of copies of their values.
    assert!(callback() > PROVIDER * 3, "three provider calls at least");
    assert!(refresh() > millis(LEASE_MS) * 2, "a whole wait and a whole lease");
    assert!(proxy(Duration::from_secs(30)) > refresh() + Duration::from_secs(60));
    assert!(backchannel(PARALLEL_DELETES + 1) == backchannel(PARALLEL_DELETES) + 2 * STORE);
}

#[test]
fn the_reader_finds_what_it_is_asked_for_and_nothing_else() {
    let text = "A:\n  # comment\n  B: 1 # note\n  C:\n    \"5\": { Seconds: 35 }\n    D: x\nE: 2\n";
    let yaml = Template::parse(text);
    assert_eq!(yaml.scalar(&["A", "B"]), "1");
    assert_eq!(yaml.scalar(&["E"]), "2");
    assert_eq!(
        yaml.children(&["A", "C"]),
        [
            ("\"5\"".to_owned(), "{ Seconds: 35 }".to_owned()),
            ("D".to_owned(), "x".to_owned())
        ]
    );
    assert!(yaml.find(&["A", "D"]).is_none(), "only direct children");
}

/// template.yaml as indented lines: enough YAML for keys, scalars and direct children.
struct Template {
    lines: Vec<(usize, String)>,
}

impl Template {
    fn read() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        Self::parse(&std::fs::read_to_string(path).expect("template.yaml"))
    }

    /// Keeps the lines that carry something, with their indentation, comments cut.
    fn parse(text: &str) -> Self {
        let lines = text
            .lines()
            .filter_map(|line| {
                let content = line.trim_start();
                if content.is_empty() || content.starts_with('#') {
                    return None;
                }
                let content = content.split(" #").next().unwrap_or(content).trim_end();
                Some((line.len() - line.trim_start().len(), content.to_owned()))
            })
            .collect();
        Self { lines }
    }

    /// The line index of `path`'s last key, each key looked for among its parent's
    /// direct children.
    fn find(&self, path: &[&str]) -> Option<usize> {
        let (mut from, mut to, mut parent_indent) = (0, self.lines.len(), None::<usize>);
        let mut found = None;
        for key in path {
            let child_indent = self.lines[from..to]
                .iter()
                .map(|(indent, _)| *indent)
                .find(|indent| parent_indent.is_none_or(|p| *indent > p))?;
            let at = (from..to).find(|&i| {
                let (indent, content) = &self.lines[i];
                *indent == child_indent && content.strip_prefix(key).is_some_and(|rest| rest.starts_with(':'))
            })?;
            let end = (at + 1..to).find(|&i| self.lines[i].0 <= child_indent).unwrap_or(to);
            (from, to, parent_indent, found) = (at + 1, end, Some(child_indent), Some(at));
        }
        found
    }

    /// The value written after `path`'s last key.
    fn scalar(&self, path: &[&str]) -> String {
        let at = self
            .find(path)
            .unwrap_or_else(|| panic!("{path:?} not in the template"));
        let key = path.last().expect("a path");
        self.lines[at].1[key.len() + 1..].trim().to_owned()
    }

    /// The direct children of `path`: key and value, each as written.
    fn children(&self, path: &[&str]) -> Vec<(String, String)> {
        let at = self
            .find(path)
            .unwrap_or_else(|| panic!("{path:?} not in the template"));
        let indent = self.lines[at].0;
        let block: Vec<&(usize, String)> = self.lines[at + 1..].iter().take_while(|(i, _)| *i > indent).collect();
        let child_indent = block.first().map(|(i, _)| *i).unwrap_or_default();
        block
            .iter()
            .filter(|(i, _)| *i == child_indent)
            .map(|(_, content)| {
                let (key, value) = split_key(content);
                (key.to_owned(), value.to_owned())
            })
            .collect()
    }

    /// `function`'s `Properties.Timeout`, which every function must set itself.
    fn function_timeout(&self, function: &str) -> String {
        assert_eq!(
            self.scalar(&["Resources", function, "Type"]),
            "AWS::Serverless::Function",
            "{function}"
        );
        self.scalar(&["Resources", function, "Properties", "Timeout"])
    }
}

/// `key: value` split at the colon that ends the key (a quoted key may hold none).
fn split_key(content: &str) -> (&str, &str) {
    let end = if let Some(rest) = content.strip_prefix('"') {
        rest.find('"').map_or(0, |i| i + 2)
    } else {
        0
    };
    let colon = content[end..].find(':').map_or(content.len(), |i| i + end);
    (&content[..colon], content.get(colon + 1..).unwrap_or("").trim())
}
