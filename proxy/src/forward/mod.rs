//! What happens after the handshake: HTTP reverse proxying or a TCP byte pipe.
//!
//! # Layout
//! - `http`: hyper server (HTTP/1.1 + HTTP/2) → pooled hyper-util client, with upgrades.
//! - `tcp`: `copy_bidirectional` to a TCP upstream, honouring half-close.

pub mod http;
pub mod tcp;
