//! The open-file limit: every client connection costs a descriptor, and one more for its
//! upstream. At start the soft limit is raised to the hard one (what nginx's
//! `worker_rlimit_nofile` and HAProxy do), and a configuration whose `max_connections`
//! cannot fit in it is warned about before it fails under load.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::Config;
use crate::ops::admin;

/// Descriptors besides the connections': listening sockets, the admin API's
/// connections, log and certificate files, the runtime's own.
const BASE_DESCRIPTORS: u64 = 64 + admin::MAX_CONNECTIONS as u64;

/// Raises the soft open-file limit to the hard one; returns (before, after), or `None`
/// when the limits cannot be read.
pub fn raise_limit() -> Option<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some((soft, hard));
    }
    Some((soft, soft))
}

/// The descriptors `config`'s listeners may need at once: two per connection.
pub fn needed(config: &Config) -> u64 {
    let connections: u64 = config
        .listeners
        .iter()
        .map(|l| l.max_connections as u64)
        .sum();
    connections
        .saturating_mul(2)
        .saturating_add(BASE_DESCRIPTORS)
}

/// A warning when `config` needs more descriptors than `limit`.
pub fn warning(config: &Config, limit: u64) -> Option<String> {
    let need = needed(config);
    (need > limit).then(|| {
        format!(
            "the listeners' max_connections need up to {need} open files (each connection a client and an upstream descriptor) but the limit is {limit}: under load, accept fails and new clients wait; raise it (systemd: LimitNOFILE=65536; shell: ulimit -n) or lower max_connections"
        )
    })
}

/// The hard limit: what `run` raises the soft one to.
pub fn hard_limit() -> Option<u64> {
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(_, hard)| hard)
}
