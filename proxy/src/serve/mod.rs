//! Serving connections: the worker threads, the accept loops, the TLS handshake, the
//! timeouts of an open connection, and forwarding to the upstreams.
//!
//! # Layout
//! - `workers`: the threads (one single-threaded event loop each) that serve connections.
//! - `sockets`: the listening sockets, bound here or inherited from systemd.
//! - `listener`: a listener's accept loop, with the connection limit.
//! - `tls`: the per-listener rustls configuration and the bounded handshake.
//! - `tickets`: session ticket keys shared by replicas (`session_ticket_key_file`).
//! - `client_auth`: mutual TLS, clients' certificates verified and passed on as headers.
//! - `proxy_protocol`: PROXY protocol headers received from load balancers, sent upstream.
//! - `idle`: closes connections idle too long, request heads that take too long, and
//!   clients that stop taking their responses.
//! - `warnings`: rate-limited warnings for what peers cause once per connection.
//! - `open_files`: the open-file limit, raised at start and checked against the limits.
//! - `upstream_tls`: Gatehouse as a verifying TLS client of its upstreams, and what a
//!   refusal says.
//! - `forward`: HTTP reverse proxying and TCP piping, with the upstream clients.

pub mod client_auth;
pub(crate) mod forward;
pub(crate) mod idle;
pub(crate) mod listener;
pub(crate) mod open_files;
pub mod proxy_protocol;
pub(crate) mod sockets;
pub mod tickets;
pub mod tls;
pub mod upstream_tls;
pub(crate) mod warnings;
pub(crate) mod workers;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a connection accepted just before the drain began may take to finish its
/// handshake, then to send its first request: its client is in the middle of them.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Runs a step of a connection that has no request in flight yet (the handshake, the
/// wait for the first request). Once the drain begins the step gets [`DRAIN_GRACE`] to
/// finish, so a client that connected and went silent cannot hold the shutdown for its
/// whole timeout; `None` when it did not finish in that time.
pub(crate) async fn within_drain_grace<F: Future>(
    step: F,
    shutdown: &CancellationToken,
) -> Option<F::Output> {
    let mut step = std::pin::pin!(step);
    tokio::select! {
        done = &mut step => Some(done),
        _ = shutdown.cancelled() => tokio::time::timeout(DRAIN_GRACE, step).await.ok(),
    }
}
