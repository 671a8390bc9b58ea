//! `time`: the clock, RFC 3339 and Unix time.

use chrono::{DateTime, SecondsFormat, Utc};
use rhai::{INT, Module};

use super::native::{Fallible, arg_error, func};

fn at(seconds: INT) -> Result<DateTime<Utc>, Box<rhai::EvalAltResult>> {
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| arg_error(&format!("{seconds} is out of the range of dates")))
}

pub fn module() -> Module {
    let mut module = Module::new();
    func("now").set_into_module(&mut module, || Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true));
    func("unix").set_into_module(&mut module, || Utc::now().timestamp());
    func("unix_ms").set_into_module(&mut module, || Utc::now().timestamp_millis());
    func("rfc3339").set_into_module(&mut module, |seconds: INT| -> Fallible<String> {
        Ok(at(seconds)?.to_rfc3339_opts(SecondsFormat::Secs, true))
    });
    func("format").set_into_module(&mut module, |seconds: INT, pattern: &str| -> Fallible<String> {
        let mut text = String::new();
        std::fmt::write(&mut text, format_args!("{}", at(seconds)?.format(pattern)))
            .map_err(|_| arg_error(&format!("'{pattern}' is not a valid time format")))?;
        Ok(text)
    });
    func("parse").set_into_module(&mut module, |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp())
            .map_err(|e| arg_error(&format!("'{text}' is not an RFC 3339 time: {e}")))
    });
    module
}
