//! What the requests of one connection are doing, shared by the connection's clock, its
//! requests and bodies, and (HTTP/1.1) the loop that serves its rounds of requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Requests in flight on one connection; while any is, the connection is not idle.
#[derive(Debug, Default)]
pub struct InFlight {
    pub(super) active: AtomicUsize,
    /// Set by the clock when bytes of a new request head arrive, cleared when the head is
    /// complete (a request enters flight).
    pub(super) head_pending: AtomicBool,
    /// The connection was upgraded (WebSocket): what it carries now are not requests.
    pub(super) upgraded: AtomicBool,
    /// Response bodies that have a frame ready for the client (or a head not yet taken),
    /// waiting for the client's side to take it.
    pub(super) waiting_for_client: AtomicUsize,
    /// Set when the client's side takes response bytes; the clock clears it each tick.
    pub(super) sent: AtomicBool,
    /// Set when a request starts or ends: activity even where bytes are not (HTTP/2), so
    /// that idleness counts from the end of the last request.
    pub(super) touched: AtomicBool,
    /// The last write or flush waits for the client to make room.
    pub(super) write_blocked: AtomicBool,
    /// Request bodies not (yet) seen to their end; one that never is keeps the connection
    /// from being [`InFlight::between_requests`] for good.
    pub(super) unread_bodies: AtomicUsize,
}

impl InFlight {
    /// Marks a request in flight until the guard is dropped; its head has arrived.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
        self.head_pending.store(false, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }

    /// From now on the connection carries an upgraded protocol: no more request heads to
    /// time, only idleness.
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    pub(super) fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Whether the connection is between HTTP/1.1 requests: the last response sent in
    /// full and taken by the client's side, every request body read to its end, no byte of
    /// a next request head arrived, not upgraded. HTTP state kept from here on serves no
    /// one until the client sends again.
    pub fn between_requests(&self) -> bool {
        !self.any()
            && !self.head_pending.load(Ordering::Relaxed)
            && !self.upgraded.load(Ordering::Relaxed)
            && !self.write_blocked.load(Ordering::Relaxed)
            && self.unread_bodies.load(Ordering::Relaxed) == 0
    }

    /// Bytes of a request head are waiting, put back in front of the stream: the header
    /// timeout runs (as from a head's first byte read).
    pub fn head_started(&self) {
        self.head_pending.store(true, Ordering::Relaxed);
    }

    /// Whether the connection was upgraded (WebSocket).
    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Relaxed)
    }

    /// A request body starts; the connection is not between requests until
    /// [`UnreadBody::read_to_end`].
    pub fn body_opened(self: &Arc<Self>) -> UnreadBody {
        self.unread_bodies.fetch_add(1, Ordering::Relaxed);
        UnreadBody(self.clone())
    }
}

/// A request body not yet read to its end. Dropped otherwise (the upstream answered
/// early, the exchange failed), it leaves the request's rest unread for good: hyper then
/// drains or closes the connection, and it is never treated as between requests.
pub struct UnreadBody(Arc<InFlight>);

impl UnreadBody {
    pub fn read_to_end(self) {
        self.0.unread_bodies.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    /// A response body starts or stops waiting for the client to take its next bytes.
    pub fn waiting_for_client(&self, waiting: bool) {
        if waiting {
            self.0.waiting_for_client.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.waiting_for_client.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The client's side took response bytes.
    pub fn sent(&self) {
        self.0.sent.store(true, Ordering::Relaxed);
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.touched.store(true, Ordering::Relaxed);
    }
}
