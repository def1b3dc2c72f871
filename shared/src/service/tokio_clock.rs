//! A clock for the services' unit tests: wall-clock milliseconds from a fixed start,
//! advancing with tokio's (paused) time, so leases and expiries move without sleeping.

use tokio::time::Instant;

use crate::domain::clock::Clock;

/// Epoch milliseconds `1_700_000_000_000` at creation, then tokio's elapsed time.
pub struct TokioClock {
    base_ms: i64,
    start: Instant,
}

impl TokioClock {
    /// A clock starting now (in tokio's time).
    pub fn new() -> Self {
        Self {
            base_ms: 1_700_000_000_000,
            start: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.start.elapsed().as_millis() as i64
    }
}
