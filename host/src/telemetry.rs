//! Log output: `tracing` to stderr, human-readable or JSON lines.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `FLOWHOST_LOG` (or `RUST_LOG`) sets the filter, default
/// `info`; `LOG_FORMAT=json` switches to one JSON object per line.
pub fn init() {
    let filter = std::env::var("FLOWHOST_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("FLOWHOST_LOG={filter:?} is not a valid filter ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.init();
    }
}
