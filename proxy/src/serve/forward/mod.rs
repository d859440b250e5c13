//! What happens after the handshake: HTTP reverse proxying or a TCP byte pipe.
//!
//! # Layout
//! - `http`: hyper's server (HTTP/1.1 + HTTP/2 by ALPN) forwarding each request.
//! - `headers`: hop-by-hop headers, `X-Forwarded-*`, the host a request names.
//! - `body`: the response body streamed back, which records the request when it ends.
//! - `upgrade`: 101 upgrades (WebSocket) spliced end to end.
//! - `pool`: the connections to one upstream, per worker (HTTP/1.1 keep-alive, HTTP/2).
//! - `routes`: which upstream a connection goes to, by TLS server name.
//! - `tcp`: `copy_bidirectional` to a TCP upstream, honouring half-close.

mod body;
mod headers;
pub mod http;
pub mod pool;
pub mod routes;
pub mod tcp;
mod upgrade;

use tokio::sync::OwnedSemaphorePermit;

use crate::ops::metrics::ConnectionGuard;
use crate::serve::workers::Open;

/// A connection's share of the listener: its `max_connections` permit and its place in
/// `gatehouse_connections_active` and in its worker's count. Held by the connection and by
/// whatever it is upgraded to (a WebSocket outlives the HTTP connection that carried its
/// handshake).
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _active: ConnectionGuard,
    _worker: Open,
}

impl ConnectionSlot {
    pub(crate) fn new(permit: OwnedSemaphorePermit, active: ConnectionGuard, worker: Open) -> Self {
        Self {
            _permit: permit,
            _active: active,
            _worker: worker,
        }
    }
}
