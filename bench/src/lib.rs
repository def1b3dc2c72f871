//! Benchmark harness of the BFF: the parts shared by the `bff-bench` driver and the
//! in-process handler benches (`benches/handlers.rs`). The provider and the browser that
//! walks its pages are `bff_testkit`'s, the same as the integration tests use.
//!
//! - [`upstream`]: a fast loopback resource API, the same for every contender.
//! - [`stats`]: medians and percentiles.
//!
//! Everything listens on loopback addresses only.

pub mod stats;
pub mod upstream;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The repository root (the parent of `bench/`).
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` in the repository).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Where the harness keeps its intermediate results (criterion's output stays in
/// `target/criterion`).
pub fn results_dir() -> PathBuf {
    target_dir().join("bench")
}

/// Token-sealing key of every benchmark configuration (a fixed test key, never a real one).
pub const BENCH_TOKEN_KEYS: &str = "b1:QkVOQ0hCRU5DSEJFTkNIQkVOQ0hCRU5DSEJFTkNIISE=";

/// Calls counted by name (provider requests by path, store operations, ...).
pub type Counts = BTreeMap<String, u64>;

/// What was counted between two snapshots (names with no new count left out).
pub fn delta(before: &Counts, after: &Counts) -> Counts {
    after
        .iter()
        .filter_map(|(name, n)| {
            let grew = n.saturating_sub(before.get(name).copied().unwrap_or(0));
            (grew > 0).then(|| (name.clone(), grew))
        })
        .collect()
}
