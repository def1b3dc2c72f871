//! A clock the tests move forward to observe expiry, injected into the BFF's context in
//! place of the wall clock.

use std::sync::atomic::{AtomicI64, Ordering};

use bff::domain::clock::Clock;
use bff::platform::clock::SystemClock;

/// The wall clock plus an offset the test moves.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_secs: AtomicI64,
}

impl TestClock {
    /// Moves this clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_secs.load(Ordering::Relaxed) * 1000
    }
}
