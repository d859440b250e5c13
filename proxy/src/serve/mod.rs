//! Serving connections: the worker threads, the accept loops, the TLS handshake, the
//! timeouts of an open connection, and forwarding to the upstreams.
//!
//! # Layout
//! - `workers`: the threads (one single-threaded event loop each) that serve connections.
//! - `listener`: a listening socket and its accept loop, with the connection limit.
//! - `tls`: the per-listener rustls configuration and the bounded handshake.
//! - `idle`: closes connections idle too long, request heads that take too long, and
//!   clients that stop taking their responses.
//! - `warnings`: rate-limited warnings for what peers cause once per connection.
//! - `open_files`: the open-file limit, raised at start and checked against the limits.
//! - `upstream_tls`: Gatehouse as a verifying TLS client of its upstreams, and what a
//!   refusal says.
//! - `forward`: HTTP reverse proxying and TCP piping, with the upstream clients.

pub(crate) mod forward;
pub(crate) mod idle;
pub(crate) mod listener;
pub(crate) mod open_files;
pub mod tls;
pub mod upstream_tls;
pub(crate) mod warnings;
pub(crate) mod workers;
