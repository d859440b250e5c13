//! One listener's metric handles, resolved when it starts: what the hot path records
//! through (an atomic add each).

use std::sync::OnceLock;

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

use super::{ACCEPT_ERROR_KINDS, CLIENT_ERROR_KINDS, HANDSHAKE_RESULTS, UPSTREAM_ERROR_KINDS};

/// The handles of an enabled listener.
pub(super) struct Handles {
    pub(super) name: String,
    pub(super) handshakes: [IntCounter; HANDSHAKE_RESULTS.len()],
    pub(super) connections_active: IntGauge,
    pub(super) request_duration: Histogram,
    pub(super) upstream_errors: [IntCounter; UPSTREAM_ERROR_KINDS.len()],
    pub(super) client_errors: [IntCounter; CLIENT_ERROR_KINDS.len()],
    pub(super) accept_errors: [IntCounter; ACCEPT_ERROR_KINDS.len()],
    pub(super) requests_vec: IntCounterVec,
    pub(super) requests_by_code: Box<[OnceLock<IntCounter>]>,
}

/// One listener's metric handles. All methods are cheap no-ops when metrics are off.
pub struct ListenerMetrics {
    pub(super) inner: Option<Handles>,
}

/// Decrements the active connection gauge when the connection (or what it was upgraded
/// to) ends.
pub struct ConnectionGuard(Option<IntGauge>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(g) = &self.0 {
            g.dec();
        }
    }
}

impl ListenerMetrics {
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    pub fn connection(&self) -> ConnectionGuard {
        let gauge = self.inner.as_ref().map(|h| h.connections_active.clone());
        if let Some(g) = &gauge {
            g.inc();
        }
        ConnectionGuard(gauge)
    }

    /// `result` is one of [`HANDSHAKE_RESULTS`].
    pub fn handshake(&self, result: &str) {
        if let Some(h) = &self.inner {
            inc_kind(&h.handshakes, &HANDSHAKE_RESULTS, result);
        }
    }

    /// `kind` is one of [`UPSTREAM_ERROR_KINDS`].
    pub fn upstream_error(&self, kind: &str) {
        if let Some(h) = &self.inner {
            inc_kind(&h.upstream_errors, &UPSTREAM_ERROR_KINDS, kind);
        }
    }

    /// `kind` is one of [`ACCEPT_ERROR_KINDS`].
    pub fn accept_error(&self, kind: &str) {
        if let Some(h) = &self.inner {
            inc_kind(&h.accept_errors, &ACCEPT_ERROR_KINDS, kind);
        }
    }

    /// `kind` is one of [`CLIENT_ERROR_KINDS`].
    pub fn client_error(&self, kind: &str) {
        if let Some(h) = &self.inner {
            inc_kind(&h.client_errors, &CLIENT_ERROR_KINDS, kind);
        }
    }

    /// Records an answered request: its status and how long it took.
    pub fn request(&self, status: http::StatusCode, seconds: f64) {
        if let Some(h) = &self.inner {
            let code = status.as_u16() as usize;
            if let Some(slot) = code
                .checked_sub(100)
                .and_then(|i| h.requests_by_code.get(i))
            {
                slot.get_or_init(|| {
                    h.requests_vec
                        .with_label_values(&[h.name.as_str(), status.as_str()])
                })
                .inc();
            }
            h.request_duration.observe(seconds);
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }
}

/// Adds one to the counter of `kind` among `kinds`; a kind not listed counts nowhere.
fn inc_kind(counters: &[IntCounter], kinds: &[&str], kind: &str) {
    if let Some(i) = kinds.iter().position(|k| *k == kind) {
        counters[i].inc();
    }
}
