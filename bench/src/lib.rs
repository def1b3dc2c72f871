//! Benchmark harness of the BFF: the parts shared by the `bff-bench` driver and the
//! in-process handler benches (`benches/handlers.rs`).
//!
//! - [`provider`]: the local OpenID provider (`infra/provider.mjs`, a real
//!   `oidc-provider`) with its test hooks, which count grants and requests by path.
//! - [`browser`]: a headless browser that walks the provider's login and consent pages
//!   and stops at the redirect back to the BFF, so the callback can be fed to anything
//!   (a handler in-process, a Lambda function through the runtime emulator, a server).
//! - [`upstream`]: a fast loopback resource API, the same for every contender.
//! - [`stats`]: medians and percentiles.
//!
//! Everything listens on loopback addresses only.

pub mod browser;
pub mod provider;
pub mod stats;
pub mod upstream;

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
