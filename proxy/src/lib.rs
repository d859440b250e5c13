//! Gatehouse, the TLS-terminating reverse proxy: listeners, handshakes and forwarding.
//! Certificates come from [`certstore`]; this crate knows sockets.
//!
//! # Layout
//! - `tls`: the per-listener rustls server configuration and the bounded handshake.

#![forbid(unsafe_code)]

pub mod tls;
