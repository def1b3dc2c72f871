//! The trace a request belongs to, for the calls made while serving it.
//!
//! The edge runs each request [`within`] its [`TraceContext`]; adapters that call out
//! (the provider's token endpoint) read [`current_traceparent`] to continue the same
//! trace without every service passing it along. Outside a request there is none.

use std::future::Future;

use crate::domain::trace::TraceContext;

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// Runs `work` as part of `trace`.
pub async fn within<F: Future>(trace: TraceContext, work: F) -> F::Output {
    CURRENT.scope(trace, work).await
}

/// The `traceparent` naming the BFF's span of the current request, if any.
pub fn current_traceparent() -> Option<String> {
    CURRENT.try_with(TraceContext::traceparent).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_trace_is_known_only_within_its_request() {
        assert_eq!(current_traceparent(), None);
        let trace = TraceContext::start();
        let seen = within(trace.clone(), async { current_traceparent() }).await;
        assert_eq!(seen, Some(trace.traceparent()));
    }
}
