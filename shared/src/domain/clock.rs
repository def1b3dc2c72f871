//! The clock every expiry decision reads: a port, so tests and services can be given
//! another time than the wall clock's.

/// Wall-clock time as the BFF sees it.
pub trait Clock: Send + Sync {
    /// Epoch milliseconds now (lease deadlines need finer grain than seconds).
    fn now_ms(&self) -> i64;

    /// Epoch seconds now.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}
