//! Operational metrics: what happened (logins, refreshes, upstream answers, store errors,
//! ended sessions), counted per process for `bff-local`'s `GET /metrics` (Prometheus text
//! format) and per invocation for one CloudWatch Embedded Metric Format line.
//!
//! Code anywhere below the edge calls [`record`]; the edge runs each request inside
//! [`measure`], which collects that request's events into an [`Invocation`] and adds them
//! to the process's [`Registry`]. An event outside [`measure`] is dropped.
//!
//! Cardinality is bounded by construction: every label and dimension value is a
//! `&'static str` from a fixed set (route names, reasons, status classes), never a user
//! id, a token, a session id or a path. This module never logs anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The EMF dimension whose value names the deployment's BFF (constant, so alarms can
/// select it); the namespace tells stacks apart.
pub const SERVICE: &str = "bff";

/// Why a login did not complete: the `error` code the callback answered with (a fixed
/// set, see `http::error`).
pub type LoginFailure = &'static str;

/// How a refresh of an access token ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// This caller refreshed and saved the new tokens.
    Done,
    /// Another caller was refreshing; this one waited and used its tokens.
    Waited,
    /// The provider refused the refresh token (`invalid_grant`): the session ended.
    InvalidGrant,
    /// The provider failed (down, timed out, other refusal).
    ProviderFailure,
    /// The store failed (lease or saving the new tokens).
    StoreFailure,
}

impl RefreshOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Waited => "waited",
            Self::InvalidGrant => "invalid_grant",
            Self::ProviderFailure => "provider_failure",
            Self::StoreFailure => "store_failure",
        }
    }
}

/// Why a session ended. Sessions that outlive their idle or absolute lifetime are not
/// counted: they lapse in the store (TTL) without an event the BFF sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `POST /auth/logout`.
    Logout,
    /// The provider's back-channel logout.
    Backchannel,
    /// A new login in the same browser replaced it.
    Replaced,
    /// The refresh token was refused, or the access token expired without one.
    RefreshEnded,
    /// A refreshed ID token was invalid or named another user.
    InvalidIdToken,
}

impl EndReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Backchannel => "backchannel",
            Self::Replaced => "replaced",
            Self::RefreshEnded => "refresh_ended",
            Self::InvalidIdToken => "invalid_id_token",
        }
    }
}

/// Something worth counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A login was started (the browser sent to the provider).
    LoginStarted,
    /// A login completed (a session was created).
    LoginCompleted,
    /// A callback failed, for this reason.
    LoginFailed(LoginFailure),
    /// A refresh ended so.
    Refresh(RefreshOutcome),
    /// The upstream of `route` answered with `status`.
    UpstreamAnswer {
        /// The route name.
        route: &'static str,
        /// The upstream's status.
        status: u16,
    },
    /// The upstream of `route` could not be reached or timed out.
    UpstreamFailed {
        /// The route name.
        route: &'static str,
    },
    /// The store failed a call (not a conditional-write conflict, which is normal).
    StoreError,
    /// `n` sessions ended for this reason.
    SessionsEnded(EndReason, u32),
}

/// One Prometheus series: family, label pairs.
type Series = (&'static str, Vec<(&'static str, &'static str)>);

impl Event {
    /// The Prometheus series it adds to, and by how much.
    fn series(self) -> (Series, f64) {
        match self {
            Self::LoginStarted => (("bff_logins_started_total", vec![]), 1.0),
            Self::LoginCompleted => (("bff_logins_completed_total", vec![]), 1.0),
            Self::LoginFailed(reason) => (("bff_logins_failed_total", vec![("reason", reason)]), 1.0),
            Self::Refresh(outcome) => (("bff_refreshes_total", vec![("outcome", outcome.as_str())]), 1.0),
            Self::UpstreamAnswer { route, status } => (
                (
                    "bff_upstream_answers_total",
                    vec![("route", route), ("class", status_class(status))],
                ),
                1.0,
            ),
            Self::UpstreamFailed { route } => (
                (
                    "bff_upstream_answers_total",
                    vec![("route", route), ("class", "failed")],
                ),
                1.0,
            ),
            Self::StoreError => (("bff_store_errors_total", vec![]), 1.0),
            Self::SessionsEnded(reason, n) => (
                ("bff_sessions_ended_total", vec![("reason", reason.as_str())]),
                f64::from(n),
            ),
        }
    }

    /// The EMF metrics it adds to (a total and, where there is one, its breakdown).
    fn emf_names(self) -> Vec<String> {
        match self {
            Self::LoginStarted => vec!["LoginsStarted".into()],
            Self::LoginCompleted => vec!["LoginsCompleted".into()],
            Self::LoginFailed(reason) => vec!["LoginsFailed".into(), format!("LoginsFailed.{reason}")],
            Self::Refresh(outcome) => {
                let mut names = vec![format!("Refresh.{}", outcome.as_str())];
                if matches!(outcome, RefreshOutcome::ProviderFailure | RefreshOutcome::StoreFailure) {
                    names.push("RefreshFailures".into());
                }
                names
            }
            Self::UpstreamAnswer { status, .. } => vec![format!("UpstreamAnswers.{}", status_class(status))],
            Self::UpstreamFailed { .. } => vec!["UpstreamAnswers.failed".into()],
            Self::StoreError => vec!["StoreErrors".into()],
            Self::SessionsEnded(reason, _) => {
                vec!["SessionsEnded".into(), format!("SessionsEnded.{}", reason.as_str())]
            }
        }
    }
}

/// `2xx`, `4xx`…: the class of an HTTP status.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A latency summary: count and sum, in seconds for Prometheus.
#[derive(Debug, Default, Clone, Copy)]
struct Summary {
    count: u64,
    sum_secs: f64,
}

#[derive(Debug, Default)]
struct Counters {
    series: BTreeMap<Series, f64>,
    upstream_latency: BTreeMap<&'static str, Summary>,
}

/// A process's counters, rendered by [`Registry::prometheus`].
#[derive(Debug, Default)]
pub struct Registry {
    counters: Mutex<Counters>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, series: Series, by: f64) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.series.entry(series).or_default() += by;
        }
    }

    /// Counts a request answered on `route` with `status`; `bff_error` when the BFF
    /// itself made the error answer (not an upstream's answer passed on).
    fn request(&self, route: &'static str, status: u16, bff_error: bool) {
        self.add(
            (
                "bff_requests_total",
                vec![("route", route), ("class", status_class(status))],
            ),
            1.0,
        );
        if bff_error && status >= 500 {
            self.add(("bff_errors_5xx_total", vec![("route", route)]), 1.0);
        }
    }

    fn latency(&self, route: &'static str, ms: f64) {
        if let Ok(mut counters) = self.counters.lock() {
            let summary = counters.upstream_latency.entry(route).or_default();
            summary.count += 1;
            summary.sum_secs += ms / 1000.0;
        }
    }

    /// The current value of a counter series (tests read it).
    pub fn value(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        let Ok(counters) = self.counters.lock() else { return 0.0 };
        counters
            .series
            .iter()
            .filter(|((f, l), _)| *f == family && l.iter().map(|(k, v)| (*k, *v)).eq(labels.iter().copied()))
            .map(|(_, v)| *v)
            .sum()
    }

    /// Every counter in the Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let Ok(counters) = self.counters.lock() else {
            return String::new();
        };
        let mut out = String::new();
        let mut family_seen = None;
        for ((family, labels), value) in &counters.series {
            if family_seen != Some(*family) {
                let _ = writeln!(out, "# TYPE {family} counter");
                family_seen = Some(*family);
            }
            let _ = writeln!(out, "{family}{} {value}", label_text(labels));
        }
        if !counters.upstream_latency.is_empty() {
            out.push_str("# TYPE bff_upstream_latency_seconds summary\n");
            for (route, summary) in &counters.upstream_latency {
                let labels = label_text(&[("route", route)]);
                let _ = writeln!(out, "bff_upstream_latency_seconds_sum{labels} {}", summary.sum_secs);
                let _ = writeln!(out, "bff_upstream_latency_seconds_count{labels} {}", summary.count);
            }
        }
        out
    }
}

fn label_text(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    // Values come from fixed sets of plain words: nothing to escape.
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", pairs.join(","))
}

/// What one request did, for its EMF line.
#[derive(Debug, Default, Clone)]
pub struct Invocation {
    counts: BTreeMap<String, f64>,
    upstream_latency_ms: Vec<f64>,
}

impl Invocation {
    fn count(&mut self, name: String, by: f64) {
        *self.counts.entry(name).or_default() += by;
    }

    /// The EMF line of this invocation on `route`, answered with `status` (`bff_error`:
    /// an error answer the BFF made), in `namespace`, at `timestamp_ms`.
    pub fn emf(&self, namespace: &str, route: &'static str, status: u16, bff_error: bool, timestamp_ms: i64) -> String {
        let mut counts = self.counts.clone();
        counts.insert("Requests".into(), 1.0);
        if bff_error && status >= 500 {
            counts.insert("Errors5xx".into(), 1.0);
        }
        let mut line = serde_json::Map::new();
        let mut metrics: Vec<serde_json::Value> = counts
            .keys()
            .map(|name| serde_json::json!({ "Name": name, "Unit": "Count" }))
            .collect();
        for (name, value) in &counts {
            line.insert(name.clone(), serde_json::json!(value));
        }
        if !self.upstream_latency_ms.is_empty() {
            metrics.push(serde_json::json!({ "Name": "UpstreamLatency", "Unit": "Milliseconds" }));
            line.insert("UpstreamLatency".into(), serde_json::json!(self.upstream_latency_ms));
        }
        line.insert("Service".into(), serde_json::json!(SERVICE));
        line.insert("Route".into(), serde_json::json!(route));
        line.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Service"], ["Service", "Route"]],
                    "Metrics": metrics,
                }],
            }),
        );
        serde_json::Value::Object(line).to_string()
    }
}

struct Scope {
    registry: Arc<Registry>,
    invocation: Mutex<Invocation>,
}

tokio::task_local! {
    static CURRENT: Arc<Scope>;
}

/// Counts `event` in the current request's invocation and its process's registry.
pub fn record(event: Event) {
    let _ = CURRENT.try_with(|scope| {
        let (series, by) = event.series();
        scope.registry.add(series, by);
        if let Ok(mut invocation) = scope.invocation.lock() {
            for name in event.emf_names() {
                invocation.count(name, by);
            }
        }
    });
}

/// Notes how long the upstream of `route` took to answer.
pub fn upstream_latency(route: &'static str, ms: f64) {
    let _ = CURRENT.try_with(|scope| {
        scope.registry.latency(route, ms);
        if let Ok(mut invocation) = scope.invocation.lock() {
            invocation.upstream_latency_ms.push((ms * 1000.0).round() / 1000.0);
        }
    });
}

/// Runs `request` (answering on `route`) with its events counted into `registry`; returns
/// its output and what it did. `status_of` reads the answer's status and whether the BFF
/// itself made it as an error answer.
pub async fn measure<F, T>(
    registry: &Arc<Registry>,
    route: &'static str,
    request: F,
    status_of: impl FnOnce(&T) -> (u16, bool),
) -> (T, Invocation)
where
    F: Future<Output = T>,
{
    let scope = Arc::new(Scope {
        registry: registry.clone(),
        invocation: Mutex::new(Invocation::default()),
    });
    let output = CURRENT.scope(scope.clone(), request).await;
    let (status, bff_error) = status_of(&output);
    registry.request(route, status, bff_error);
    let invocation = scope.invocation.lock().map(|i| i.clone()).unwrap_or_default();
    (output, invocation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_the_registry_and_the_invocation_only_inside_a_measure() {
        let registry = Arc::new(Registry::new());
        record(Event::LoginStarted); // outside: dropped
        let ((), invocation) = measure(
            &registry,
            "api",
            async {
                record(Event::Refresh(RefreshOutcome::ProviderFailure));
                record(Event::UpstreamAnswer {
                    route: "api",
                    status: 503,
                });
                record(Event::SessionsEnded(EndReason::Backchannel, 3));
                upstream_latency("api", 12.5);
            },
            |()| (503, false),
        )
        .await;
        assert_eq!(registry.value("bff_logins_started_total", &[]), 0.0);
        assert_eq!(
            registry.value("bff_refreshes_total", &[("outcome", "provider_failure")]),
            1.0
        );
        assert_eq!(
            registry.value("bff_sessions_ended_total", &[("reason", "backchannel")]),
            3.0
        );
        assert_eq!(
            registry.value("bff_requests_total", &[("route", "api"), ("class", "5xx")]),
            1.0
        );
        // An upstream's 503 passed on is not the BFF's error.
        assert_eq!(registry.value("bff_errors_5xx_total", &[("route", "api")]), 0.0);
        let text = registry.prometheus();
        assert!(text.contains("# TYPE bff_refreshes_total counter\n"), "{text}");
        assert!(
            text.contains("bff_upstream_answers_total{route=\"api\",class=\"5xx\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("bff_upstream_latency_seconds_count{route=\"api\"} 1\n"),
            "{text}"
        );

        let line: serde_json::Value =
            serde_json::from_str(&invocation.emf("BFF/test", "api", 503, false, 1_700_000_000_000)).expect("json");
        assert_eq!(line["RefreshFailures"], 1.0);
        assert_eq!(line["Refresh.provider_failure"], 1.0);
        assert_eq!(line["SessionsEnded.backchannel"], 3.0);
        assert_eq!(line["UpstreamLatency"], serde_json::json!([12.5]));
        assert_eq!(line["Requests"], 1.0);
        assert!(line.get("Errors5xx").is_none());
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "BFF/test");
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().expect("name");
            assert!(line.get(name).is_some(), "{name} not at the top level");
        }
    }

    #[test]
    fn the_bff_s_own_5xx_answers_are_counted_apart() {
        let registry = Registry::new();
        registry.request("me", 503, true);
        registry.request("api", 502, false);
        assert_eq!(registry.value("bff_errors_5xx_total", &[("route", "me")]), 1.0);
        assert_eq!(registry.value("bff_errors_5xx_total", &[("route", "api")]), 0.0);
        let line: serde_json::Value =
            serde_json::from_str(&Invocation::default().emf("BFF", "me", 503, true, 0)).expect("json");
        assert_eq!(line["Errors5xx"], 1.0);
    }
}
