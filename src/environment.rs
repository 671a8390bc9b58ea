//! What scripts may read from the process environment, and what they never may.
//!
//! Secrets and variables a script declares fall back to the process variable of the same name, which is
//! how an operator hands a server its credentials without a store (`STRIPE_API_KEY=… switchboard serve`).
//! The environment also holds what belongs to the runtime and to the host, and a script from a
//! third-party image must reach none of it. So a process variable reaches a script only when:
//!
//! * the script declares the name (in `META.secrets` or `META.variables`) — checked by the callers, and
//!   shown to the operator by `boot diff` and import;
//! * the name is not the runtime's: nothing starting with `SWITCHBOARD_` (admin token, master key,
//!   invocation tokens, image passphrase, …);
//! * the name is not the host's: `PATH`, `HOME`, `USER`, the locale, the loader (`LD_*`), the session
//!   (`SSH_*`, `XDG_*`, `DBUS_*`), the build tools (`CARGO_*`, `RUST_*`) and the like.
//!
//! A script declaring a reserved name is refused when it is compiled, so an image asking for one never
//! loads. The runtime itself reads its base-URL overrides (`<NAME>_BASE_URL`) through [`var`] too, so a
//! server named after the runtime cannot have an override read from a `SWITCHBOARD_` variable.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

/// Names of the host's own environment that no script may read.
const HOST_NAMES: [&str; 18] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TMPDIR", "TMP", "TEMP", "HOSTNAME", "LANG",
    "LANGUAGE", "TERM", "TZ", "MAIL", "DISPLAY", "EDITOR",
];

/// Prefixes of the runtime's and the host's variables.
const RESERVED_PREFIXES: [&str; 11] =
    ["SWITCHBOARD_", "LC_", "LD_", "DYLD_", "SSH_", "XDG_", "DBUS_", "CARGO_", "RUST_", "RUSTUP_", "SUDO_"];

/// Whether `name` belongs to the runtime or the host, and so is never readable by a script.
pub fn reserved(name: &str) -> bool {
    HOST_NAMES.contains(&name) || RESERVED_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// Why a script may not declare `name`, if it may not.
pub fn refusal(name: &str) -> Option<String> {
    reserved(name).then(|| {
        format!(
            "'{name}' belongs to the runtime or the host: names starting with SWITCHBOARD_ and host variables such as PATH or HOME are never readable by scripts"
        )
    })
}

/// The process environment as the runtime started with it, read once: every outbound call reads
/// overrides and credentials from it, and nothing changes a running process's environment.
static ENVIRONMENT: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
});

/// The process variable `name`, unless it is reserved.
pub fn var(name: &str) -> Option<String> {
    if reserved(name) {
        return None;
    }
    ENVIRONMENT.get(name).cloned()
}

/// The variable `name`: the registry's (`variables`), else the process's (see [`var`]).
pub fn variable(variables: &BTreeMap<String, String>, name: &str) -> Option<String> {
    variables.get(name).cloned().or_else(|| var(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_and_host_variables_are_reserved_and_service_names_are_not() {
        for name in [
            "SWITCHBOARD_ADMIN_TOKEN",
            "SWITCHBOARD_MASTER_KEY",
            "SWITCHBOARD_INVOKE_TOKENS",
            "SWITCHBOARD_IMAGE_PASSPHRASE",
            "PATH",
            "HOME",
            "LD_PRELOAD",
            "SSH_AUTH_SOCK",
            "CARGO_HOME",
            "RUST_LOG",
        ] {
            assert!(reserved(name), "{name}");
            assert!(refusal(name).is_some_and(|m| m.contains(name)), "{name}");
        }
        for name in ["STRIPE_API_KEY", "SWITCHBOARDS", "HOMEPAGE_URL", "PATHWAY_TOKEN", "AWS_REGION"] {
            assert!(!reserved(name), "{name}");
        }
    }

    #[test]
    fn a_reserved_variable_is_never_read() {
        // PATH is set in every test process; the rule hides it.
        assert!(std::env::var("PATH").is_ok());
        assert_eq!(var("PATH"), None);
    }
}
