//! Log output: JSON lines in Lambda, readable lines locally, and the one line a failed
//! start-up leaves.

/// Logs as JSON lines (what CloudWatch expects), level from `RUST_LOG` (default `info`).
pub fn init_tracing_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(env_filter())
        .with_current_span(false)
        .without_time() // CloudWatch stamps every line itself.
        .try_init();
}

/// Human-readable logs for local runs; colours only when the output is a terminal, so a
/// log file holds plain text.
pub fn init_tracing_pretty() {
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env_filter())
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}

fn env_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

/// Prints `error` as the one line a failed start-up leaves, and exits non-zero.
pub fn exit_on_startup_error(error: impl std::fmt::Display) -> ! {
    eprintln!("bff: configuration error: {error}");
    std::process::exit(2)
}
