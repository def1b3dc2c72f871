//! W3C Trace Context (`traceparent`): continuing the browser's trace, or starting one.
//!
//! A valid `traceparent` from the browser keeps its trace id and sampled flag; the BFF is
//! a new span in it, with a span id of its own. A missing or invalid one (wrong length,
//! upper-case hex, an all-zero id, version `ff`) starts a new trace, and its `tracestate`
//! is then dropped, as the specification requires. Pure rules: nothing is sent or logged
//! here.

use rand::RngCore as _;

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE: &str = "tracestate";

/// The BFF's span in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    span_id: String,
    sampled: bool,
    continued: bool,
}

impl TraceContext {
    /// A new span in the trace of `incoming` (the browser's `traceparent`), or in a new
    /// trace when it is absent or invalid.
    pub fn continue_or_start(incoming: Option<&str>) -> Self {
        match incoming.and_then(parse) {
            Some((trace_id, sampled)) => Self {
                trace_id: trace_id.to_owned(),
                span_id: random_hex::<8>(),
                sampled,
                continued: true,
            },
            None => Self::start(),
        }
    }

    /// A new trace (sampled), with the BFF as its root span.
    pub fn start() -> Self {
        Self {
            trace_id: random_hex::<16>(),
            span_id: random_hex::<8>(),
            sampled: true,
            continued: false,
        }
    }

    /// The trace id: 32 lower-case hex digits.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The BFF's span id: 16 lower-case hex digits.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// Whether the browser's trace was continued (so its `tracestate` may follow).
    pub fn continued(&self) -> bool {
        self.continued
    }

    /// The `traceparent` value naming the BFF's span as the parent of the next call.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }
}

/// The trace id and sampled flag of a valid `traceparent`.
fn parse(value: &str) -> Option<(&str, bool)> {
    let value = value.trim_matches([' ', '\t']);
    let fields: Vec<&str> = value.splitn(5, '-').collect();
    let [version, trace_id, parent_id, flags, rest @ ..] = fields.as_slice() else {
        return None;
    };
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex(version, 2) || *version == "ff" || !hex(trace_id, 32) || !hex(parent_id, 16) || !hex(flags, 2) {
        return None;
    }
    // Version 00 has exactly four fields; a later version may append more after a dash.
    if (*version == "00" && !rest.is_empty())
        || trace_id.bytes().all(|b| b == b'0')
        || parent_id.bytes().all(|b| b == b'0')
    {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace_id, flags & 1 == 1))
}

/// `N` random bytes as lower-case hex, never all zero (an all-zero id is invalid).
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    while bytes.iter().all(|b| *b == 0) {
        rand::rng().fill_bytes(&mut bytes);
    }
    // By table, not `format!` per byte: this runs twice on every request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * N);
    for b in bytes {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_keeps_its_trace_id_and_flag_with_a_new_span() {
        let trace = TraceContext::continue_or_start(Some(VALID));
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(trace.span_id(), "00f067aa0ba902b7");
        assert!(trace.continued());
        assert!(trace.traceparent().ends_with("-01"));
        let unsampled = TraceContext::continue_or_start(Some(&VALID.replace("-01", "-00")));
        assert!(unsampled.traceparent().ends_with("-00"));
        // A later version with an extra field is read as version 00.
        let future = TraceContext::continue_or_start(Some(&format!("cc{}-what-ever", &VALID[2..])));
        assert_eq!(future.trace_id(), trace.trace_id());
        assert!(future.traceparent().starts_with("00-"));
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for invalid in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            let trace = TraceContext::continue_or_start(Some(invalid));
            assert!(!trace.continued(), "{invalid:?} was continued");
            assert_ne!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "{invalid:?}");
            assert!(parse(&trace.traceparent()).is_some(), "{invalid:?}: new one invalid");
        }
    }

    #[test]
    fn new_traces_are_valid_and_distinct() {
        let (a, b) = (TraceContext::start(), TraceContext::start());
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(parse(&a.traceparent()), Some((a.trace_id(), true)));
        assert_eq!(a.span_id().len(), 16);
    }
}
