//! Gatehouse, the TLS-terminating reverse proxy: listeners, handshakes and forwarding.
//! Certificates come from [`certstore`]; this crate knows sockets.
//!
//! # Layout
//! - `config`: the TOML file → a checked [`config::Config`].
//! - `host`, `internal`: certificates issued by the internal CA.
//! - `upstream_tls`: Gatehouse as a verifying TLS client of its upstreams.
//! - `upstream`, `routes`: where each connection is forwarded (by SNI).
//! - `tls`: the per-listener rustls configuration and the bounded handshake.
//! - `workers`: the threads (one event loop each) that serve connections.
//! - `listener`: accept loop with connection limits.
//! - `idle`: closes connections idle too long.
//! - `forward`: HTTP reverse proxying and TCP piping.
//! - `server`: a running instance ([`server::Running`]): start, reload, drain.
//! - `metrics`: Prometheus metrics with per-listener handles.
//! - `admin`: the admin API (`/metrics`, `/healthz`, `/certs`, `POST /reload`).
//! - `backup`: backups of certificate files (install, restore).
//! - `cli`: the `gatehouse` subcommands.

#![forbid(unsafe_code)]

pub mod admin;
pub mod backup;
pub mod cli;
pub mod config;
pub mod forward;
pub mod host;
pub mod idle;
pub mod internal;
pub mod listener;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod upstream_tls;
pub mod workers;
