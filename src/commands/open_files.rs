//! The open-file limit of `serve`. Every waiting call holds two sockets — its caller's and its
//! upstream's — so the 1 024 files a shell usually allows would cap a server near 500 waiting calls.
//! At start-up the soft limit is raised as far as the hard limit allows, and a hard limit too low for
//! [`WANTED`] is said in the log, with what it means: as a warning when it is very low.

/// Enough for 10 000 calls waiting at once on as many upstream connections, with room to spare.
const WANTED: u64 = 65_536;

/// A hard limit below this (about 2 000 waiting calls) is a warning; above it, information.
const FEW: u64 = 4_096;

/// Raises the soft open-file limit towards [`WANTED`] (or to the hard limit when that is lower) and
/// logs what it did.
pub fn raise() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "open files: cannot read the limit");
        return;
    }
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    let target = WANTED.min(hard);
    if soft < target {
        let raised = libc::rlimit { rlim_cur: target as libc::rlim_t, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit; the soft limit stays within the hard one.
        match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } {
            0 => tracing::info!("open files: limit raised from {soft} to {target}"),
            _ => {
                let error = std::io::Error::last_os_error();
                tracing::warn!(%error, "open files: cannot raise the limit from {soft} to {target}");
            }
        }
    }
    if hard < WANTED {
        let calls = hard / 2;
        let says = "calls can wait at once (each holds its caller's and its upstream's connection); raise it \
                    (`ulimit -Hn`, LimitNOFILE=) for more";
        match hard < FEW {
            true => tracing::warn!("open files: the hard limit is {hard}, so at most about {calls} {says}"),
            false => tracing::info!("open files: the hard limit is {hard}, so at most about {calls} {says}"),
        }
    }
}
