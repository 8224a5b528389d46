//! The open-file limit: its soft value raised to the hard one at start-up, as
//! Go's runtime does. systemd and containerd 2.x start services with a soft
//! `RLIMIT_NOFILE` of 1024 and a far higher hard one; at 1024 descriptors
//! `accept` fails and connections wait in the backlog.
use rlimit::Resource;

/// The open-file limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit: the most descriptors the process may hold.
    pub soft: u64,
    /// The hard limit: the most the soft one may be raised to.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limits
/// now in force.
pub fn raise_to_hard_limit() -> std::io::Result<OpenFileLimit> {
    let (soft, hard) = Resource::NOFILE.get()?;
    if soft < hard {
        Resource::NOFILE.set(hard, hard)?;
    }
    let (soft, hard) = Resource::NOFILE.get()?;
    Ok(OpenFileLimit { soft, hard })
}
