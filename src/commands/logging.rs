//! Where and how the CLI logs: to stderr (stdout carries outputs and, for `mcp`, the protocol), as text
//! or, with `serve --log-format json`, one JSON object per line carrying the fields of the spans it is
//! in (an invocation's request and trace ids). The filter is `SWITCHBOARD_LOG`, else `RUST_LOG`, else
//! the command's default.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The log filter: `SWITCHBOARD_LOG`, else `RUST_LOG`, else `default`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default))
}

/// Installs the process's logger (once; later calls change nothing).
pub fn init(default: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter(default)).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}
