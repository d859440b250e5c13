//! Warnings a peer can cause once per connection or request — failed handshakes, protocol
//! errors (an HTTP/2 reset flood), slow clients cut by a timeout, responses an upstream
//! broke off — are rate limited per kind: the first [`BURST`] of an interval are logged,
//! the rest are counted and told in one summary line when the next interval starts. The
//! metrics count every one. Lock-free: a few relaxed atomics per warning, nothing when
//! there is none.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lines of one kind logged per interval before the rest are only counted.
pub const BURST: u64 = 5;
/// How often a kind's suppressed lines are summed up.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// What a warning is about; each kind has its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handshake,
    /// A client connection ended with an HTTP protocol error (malformed frames, a reset
    /// flood answered with GOAWAY).
    Protocol,
    /// A request head that took longer than `header_timeout` (slowloris).
    HeaderTimeout,
    /// A client that took no response bytes for `send_timeout`.
    SendTimeout,
    /// A request body the client broke off or malformed.
    ClientBody,
    /// An upstream that broke off a response mid-body.
    UpstreamAborted,
}

const KINDS: usize = 6;

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Handshake => "failed TLS handshakes",
            Self::Protocol => "client connections ended by a protocol error",
            Self::HeaderTimeout => "request heads cut at header_timeout",
            Self::SendTimeout => "clients cut at send_timeout",
            Self::ClientBody => "malformed or broken-off request bodies",
            Self::UpstreamAborted => "responses broken off by the upstream",
        }
    }
}

/// One kind's budget: the interval it counts in, lines logged in it, lines suppressed.
#[derive(Default)]
struct Budget {
    interval: AtomicU64,
    logged: AtomicU64,
    suppressed: AtomicU64,
}

fn budgets() -> &'static ([Budget; KINDS], Instant) {
    static BUDGETS: OnceLock<([Budget; KINDS], Instant)> = OnceLock::new();
    BUDGETS.get_or_init(|| (Default::default(), Instant::now()))
}

impl Budget {
    /// Whether a warning in `interval` is logged, and how many the interval before it
    /// suppressed (to sum up once, when an interval turns over).
    fn admit(&self, interval: u64) -> (bool, u64) {
        let mut missed = 0;
        if self.interval.swap(interval, Ordering::Relaxed) != interval {
            self.logged.store(0, Ordering::Relaxed);
            missed = self.suppressed.swap(0, Ordering::Relaxed);
        }
        let logged = self.logged.fetch_add(1, Ordering::Relaxed) < BURST;
        if !logged {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
        (logged, missed)
    }
}

/// Logs `message()` as a WARN line unless this kind's budget for the interval is spent;
/// the message is only built when it is logged. Returns whether it was.
pub fn warn(kind: Kind, message: impl FnOnce() -> String) -> bool {
    let (all, epoch) = budgets();
    let interval = epoch.elapsed().as_secs() / INTERVAL.as_secs().max(1);
    let (logged, missed) = all[kind.index()].admit(interval);
    if missed > 0 {
        tracing::warn!(
            "{missed} more {} in the last {}s were not logged (see the metrics)",
            kind.describe(),
            INTERVAL.as_secs()
        );
    }
    if logged {
        tracing::warn!("{}", message());
    }
    logged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_burst_per_interval_and_sums_up_the_rest() {
        let budget = Budget::default();
        let logged = (0..1000).filter(|_| budget.admit(7).0).count() as u64;
        assert_eq!(logged, BURST, "a burst, then only counts");
        let (logged, missed) = budget.admit(8);
        assert!(logged, "the next interval logs again");
        assert_eq!(
            missed,
            1000 - BURST,
            "and sums up what the last one did not log"
        );
    }
}
