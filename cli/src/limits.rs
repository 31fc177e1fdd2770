//! Process limits of a fan-out: open file descriptors. Each host that runs
//! holds one TCP connection; the soft RLIMIT_NOFILE (often 1,024) is raised
//! to the hard limit at the start of a fan-out, as far as an unprivileged
//! process may, and a throttle the limit cannot hold is reported.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors psrp holds besides its hosts' connections: stdio, the
/// runtime's epoll and wakers, files the Kerberos library opens for a
/// moment (ccache, krb5.conf, replay cache), with a margin.
const BASE_FDS: u64 = 64;
/// Descriptors per host running at once: its connection, and a file the
/// Kerberos library may have open for it at the same moment.
const FDS_PER_HOST: u64 = 2;
/// Linux's default fs.nr_open: the most a soft limit may be when the hard
/// one is unlimited.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// What [`raise_open_files`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before (None: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
    /// The hard limit.
    pub hard: Option<u64>,
    /// Descriptors `throttle` hosts at once may need.
    pub needed: u64,
}

impl OpenFiles {
    /// Whether the soft limit was raised.
    pub fn raised(&self) -> bool {
        self.before != self.now
    }

    /// Whether the limit may be too low for the throttle.
    pub fn too_low(&self) -> bool {
        self.now.is_some_and(|n| n < self.needed)
    }
}

/// Descriptors `throttle` hosts at once may need.
pub fn needed(throttle: usize) -> u64 {
    BASE_FDS.saturating_add(FDS_PER_HOST.saturating_mul(throttle as u64))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (when it is below) and
/// says what it found; a failed raise leaves the limit as it was.
pub fn raise_open_files(throttle: usize) -> OpenFiles {
    let before = getrlimit(Resource::Nofile);
    let mut now = before.current;
    // An unlimited hard limit still stops at the kernel's fs.nr_open.
    let target = before.maximum.unwrap_or(NR_OPEN_DEFAULT);
    if before.current.is_some_and(|n| n < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: before.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            now = getrlimit(Resource::Nofile).current;
        }
    }
    OpenFiles {
        before: before.current,
        now,
        hard: before.maximum,
        needed: needed(throttle),
    }
}

fn show(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

/// The warning for a limit too low for the throttle.
pub fn too_low_warning(o: &OpenFiles, throttle: usize) -> String {
    format!(
        "--throttle {throttle} may need about {} open files, but the limit is {} (hard limit {}): \
         hosts may fail with 'Too many open files'; lower --throttle or raise the hard limit \
         (ulimit -Hn, LimitNOFILE= in a systemd unit)",
        o.needed,
        show(o.now),
        show(o.hard)
    )
}

/// The debug line for a raised limit.
pub fn raised_note(o: &OpenFiles) -> String {
    format!(
        "raised the open files limit (RLIMIT_NOFILE) from {} to {}",
        show(o.before),
        show(o.now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let o = raise_open_files(32);
        let after = getrlimit(Resource::Nofile);
        assert_eq!(o.now, after.current);
        // Raised as far as allowed: an unprivileged process may always go
        // up to a finite hard limit.
        if let Some(hard) = after.maximum {
            assert_eq!(after.current, Some(hard));
        }
        assert!(o.now >= o.before || o.now.is_none(), "{o:?}");
        assert_eq!(o.needed, 64 + 2 * 32);
    }

    #[test]
    fn a_limit_below_the_need_is_reported() {
        let o = OpenFiles {
            before: Some(256),
            now: Some(256),
            hard: Some(256),
            needed: needed(256),
        };
        assert!(o.too_low() && !o.raised());
        let w = too_low_warning(&o, 256);
        assert!(w.contains("--throttle 256 may need about 576 open files, but the limit is 256"));
        let unlimited = OpenFiles { now: None, ..o };
        assert!(!unlimited.too_low());
    }
}
