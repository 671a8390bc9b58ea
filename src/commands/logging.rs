//! Where and how the CLI logs: to stderr (stdout carries outputs and, for `mcp`, the protocol), as text
//! or, with `serve --log-format json`, one JSON object per line carrying the fields of the spans it is
//! in (an invocation's request and trace ids). The filter is `SWITCHBOARD_LOG`, else `RUST_LOG`, else
//! the command's default.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

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
        LogFormat::Text => {
            builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).fmt_fields(PlainFields).try_init()
        }
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

/// The fields of text log lines, exactly as [`DefaultFields`] writes them, with the common field
/// (`name=value`) written straight out when styling is off instead of through the styling machinery.
/// Every invocation opens a span whose ids are formatted when it opens, logged or not: this is on the
/// path of every call.
struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() || !writer.sanitizes_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        // Written into this thread's buffer first and handed over whole, so that the line (or the
        // span's kept fields) grows once rather than field by field.
        thread_local! {
            static FIELDS: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let buffered = FIELDS.try_with(|buffer| {
            // A field whose formatting logs (the buffer is in use) writes straight through.
            let mut buffer = buffer.try_borrow_mut().ok()?;
            buffer.clear();
            Some(record(Writer::new(&mut *buffer), &fields).and_then(|()| writer.write_str(&buffer)))
        });
        match buffered {
            Ok(Some(result)) => result,
            _ => record(writer, &fields),
        }
    }
}

fn record<R: RecordFields>(writer: Writer<'_>, fields: &R) -> fmt::Result {
    let mut visitor = Plain { writer, is_empty: true, result: Ok(()) };
    fields.record(&mut visitor);
    visitor.result
}

struct Plain<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: fmt::Result,
}

impl Plain<'_> {
    /// What needs more than `name=value` (a message, an error's sources, a raw identifier's name) is
    /// written by the default visitor, which pads as this one does.
    fn delegate(&mut self, visit: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_ok() {
            let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
            visit(&mut visitor);
            (self.result, self.is_empty) = (visitor.finish(), false);
        }
    }
}

impl Visit for Plain<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.delegate(|visitor| visitor.record_str(field, value)),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(|visitor| visitor.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // The `log` crate's metadata, which the line has shown already.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        if name == "message" || name.starts_with("r#") {
            return self.delegate(|visitor| visitor.record_debug(field, value));
        }
        if !std::mem::take(&mut self.is_empty) {
            self.result = self.writer.write_char(' ');
        }
        self.result = self.result.and_then(|()| {
            self.writer.write_str(name)?;
            self.writer.write_char('=')?;
            write!(self.writer, "{value:?}")
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a text logger writes for a few spans and events of every kind of field.
    fn logged<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(sink.clone()))
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::TRACE)
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let error = std::io::Error::other("outer");
            let span = tracing::info_span!("invocation", request_id = %"r-1", trace_id = "t\"1", via = ?"http");
            let _entered = span.enter();
            tracing::info!("plain message");
            tracing::warn!(count = 3, ratio = 0.5, ok = true, name = "quoted \"x\"", shown = %"as is", "with fields");
            tracing::error!(error = &error as &(dyn std::error::Error + 'static), r#type = "raw", "an error");
            tracing::debug!(message = "message as a field", after = -1);
            let inner = tracing::debug_span!("inner", empty = tracing::field::Empty, n = 7_u64);
            inner.record("empty", "filled later");
            inner.in_scope(|| tracing::trace!(escape = "\u{1b}[31m", "\u{1b}[1mbold?"));
        });
        String::from_utf8(written.lock().unwrap().clone()).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_lines_are_what_the_default_field_formatter_writes() {
        let default = logged(DefaultFields::new());
        assert_eq!(default.lines().count(), 5, "{default}");
        assert!(default.contains(r#"request_id=r-1 trace_id="t\"1" via="http""#), "{default}");
        assert_eq!(logged(PlainFields), default);
    }
}
