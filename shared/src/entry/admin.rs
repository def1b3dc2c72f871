//! `bff-admin`: the operator's command that lists a user's sessions and ends one or all
//! of them, on the deployment's DynamoDB table with the operator's own AWS credentials.
//!
//! ```text
//! bff-admin list <sub>             the user's live sessions, oldest first
//! bff-admin end <sub> <handle>     ends the one listed under <handle>
//! bff-admin end-all <sub>          ends every session of the user
//! ```
//!
//! The table is `BFF_TABLE`; credentials and region come from the AWS SDK's standard
//! chains (environment, shared config and credentials files with their profiles, container
//! or instance role); `AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local. It reads
//! no token keys and opens no token: what it shows is in the clear in the table
//! ([`crate::service::admin`]). Its output never holds a session id, a store key or a
//! token. Ending a session writes one EMF line (`SessionsEnded.admin`) to standard error.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use crate::domain::clock::Clock as _;
use crate::domain::secret::random_token;
use crate::platform::clock::SystemClock;
use crate::platform::config::AdminConfig;
use crate::platform::metrics::{self, Registry};
use crate::service::admin::{self, AdminError, SessionSummary};
use crate::store::dynamodb::{self, DynamoStore};
use crate::store::{SessionIndex, SessionStore};

/// How to call the command, printed on a usage error.
pub const USAGE: &str = "usage: bff-admin list <sub> | end <sub> <handle> | end-all <sub>
  list      the user's live sessions: handle, login, last seen, end, browser
  end       ends the session listed under <handle>
  end-all   ends every session of the user
environment: BFF_TABLE (default bff), BFF_SESSION_IDLE_SECS, BFF_METRICS,
  BFF_METRICS_NAMESPACE; AWS credentials and region as for the AWS CLI;
  AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local";

/// The route name of the command's EMF line.
const ROUTE: &str = "admin";

/// One invocation of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `list <sub>`.
    List {
        /// The user.
        sub: String,
    },
    /// `end <sub> <handle>`.
    End {
        /// The user.
        sub: String,
        /// The session's handle from `list`.
        handle: String,
    },
    /// `end-all <sub>`.
    EndAll {
        /// The user.
        sub: String,
    },
}

impl Command {
    /// Parses the arguments after the program name; `None` when they are not one of the
    /// forms of [`USAGE`].
    pub fn parse(args: &[String]) -> Option<Self> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["list", sub] if !sub.is_empty() => Some(Self::List { sub: (*sub).to_owned() }),
            ["end", sub, handle] if !sub.is_empty() && !handle.is_empty() => Some(Self::End {
                sub: (*sub).to_owned(),
                handle: (*handle).to_owned(),
            }),
            ["end-all", sub] if !sub.is_empty() => Some(Self::EndAll { sub: (*sub).to_owned() }),
            _ => None,
        }
    }
}

/// Runs `command` on `store` at `now` (epoch seconds); returns what to print.
pub async fn execute<S>(store: &S, command: &Command, now: i64, idle_secs: i64) -> Result<String, AdminError>
where
    S: SessionStore + SessionIndex + ?Sized,
{
    match command {
        Command::List { sub } => {
            let sessions = admin::sessions_of(store, sub, now, idle_secs).await?;
            Ok(render_list(sub, &sessions))
        }
        Command::End { sub, handle } => {
            admin::end_session(store, sub, handle, now).await?;
            Ok(format!("ended session {handle} of {sub}\n"))
        }
        Command::EndAll { sub } => {
            let ended = admin::end_all(store, sub, now).await?;
            Ok(format!("ended {ended} live session(s) of {sub}\n"))
        }
    }
}

/// The table `list` prints: one numbered row per session, times in UTC.
pub fn render_list(sub: &str, sessions: &[SessionSummary]) -> String {
    let mut out = format!(
        "{} live session(s) of {sub}, oldest first (times UTC)\n",
        sessions.len()
    );
    if sessions.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:>3}  {:<8}  {:<20}  {:<20}  {:<20}  browser",
        "#", "handle", "logged in", "last seen", "ends"
    );
    for (n, s) in sessions.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>3}  {:<8}  {:<20}  {:<20}  {:<20}  {}",
            n + 1,
            s.handle,
            utc(s.created_at),
            utc(s.last_seen_at),
            utc(s.idle_expires_at.min(s.expires_at)),
            s.user_agent
        );
    }
    out
}

fn utc(epoch_secs: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| epoch_secs.to_string())
}

/// The program: arguments and environment of the process, DynamoDB through the SDK.
pub async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = Command::parse(&args) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let config = match AdminConfig::from_lookup(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("bff-admin: {e}");
            return ExitCode::from(2);
        }
    };
    let client = dynamodb::client(&crate::platform::aws::sdk_config().await);
    let store = DynamoStore::new(client, config.table.clone());
    let now = SystemClock.now();
    let registry = Arc::new(Registry::new());
    let (result, invocation) = metrics::measure(
        &registry,
        ROUTE,
        execute(&store, &command, now, config.session_idle_secs),
        |result| (if result.is_ok() { 200 } else { 500 }, result.is_err()),
    )
    .await;
    let ended = registry.value("bff_sessions_ended_total", &[("reason", "admin")]);
    if config.metrics && ended > 0.0 {
        // The operator ships this line to a log group of the stack for CloudWatch to
        // count it (README, "Operating it").
        eprintln!(
            "{}",
            invocation.emf_events(
                &config.metrics_namespace,
                ROUTE,
                SystemClock.now_ms(),
                &random_token(12)
            )
        );
    }
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bff-admin: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn commands_parse_only_in_their_documented_forms() {
        assert_eq!(
            Command::parse(&args(&["list", "alice"])),
            Some(Command::List { sub: "alice".into() })
        );
        assert_eq!(
            Command::parse(&args(&["end", "alice", "AbCd1234"])),
            Some(Command::End {
                sub: "alice".into(),
                handle: "AbCd1234".into()
            })
        );
        assert_eq!(
            Command::parse(&args(&["end-all", "alice"])),
            Some(Command::EndAll { sub: "alice".into() })
        );
        for bad in [
            &[][..],
            &["list"],
            &["list", ""],
            &["end", "alice"],
            &["end-all", "a", "b"],
            &["drop", "alice"],
        ] {
            assert_eq!(Command::parse(&args(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn the_list_shows_handles_times_and_browsers() {
        let sessions = [SessionSummary {
            handle: "AbCd1234".into(),
            created_at: 1_767_225_600,
            last_seen_at: 1_767_229_200,
            idle_expires_at: 1_767_315_600,
            expires_at: 1_767_830_400,
            user_agent: "Firefox".into(),
        }];
        let text = render_list("alice", &sessions);
        assert!(text.starts_with("1 live session(s) of alice"), "{text}");
        let row = text.lines().nth(2).expect("row");
        for part in [
            "1",
            "AbCd1234",
            "2026-01-01T00:00:00Z",
            "2026-01-01T01:00:00Z",
            "2026-01-02T01:00:00Z",
            "Firefox",
        ] {
            assert!(row.contains(part), "{part} missing in {row}");
        }
        assert_eq!(
            render_list("bob", &[]),
            "0 live session(s) of bob, oldest first (times UTC)\n"
        );
    }
}
