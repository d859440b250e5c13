//! What happens after the handshake: HTTP reverse proxying or a TCP byte pipe.
//!
//! # Layout
//! - `http`: hyper server (HTTP/1.1 + HTTP/2) → upstream over HTTP/1.1 (`pool`) or, when
//!   the upstream may speak HTTP/2, hyper-util's pooled client; with upgrades.
//! - `pool`: keep-alive HTTP/1.1 upstream connections, reused without a task per request.
//! - `tcp`: `copy_bidirectional` to a TCP upstream, honouring half-close.

pub mod http;
pub mod pool;
pub mod tcp;
