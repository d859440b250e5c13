//! Operating a running Gatehouse: what it exports and how it is driven from outside.
//!
//! # Layout
//! - `metrics`: Prometheus metrics, with handles resolved once per listener.
//! - `advice`: warnings about a working configuration (`check` prints them, `run` logs them).
//! - `admin`: the admin API (`/metrics`, `/healthz`, `/certs`, `POST /reload`).
//! - `console`: the certificates page the admin listener serves at `/`.
//! - `client`: the admin API's client, as `gatehouse reload` and `certs install` use it.
//! - `notify`: systemd's notification protocol (ready, reloading, stopping, status).
//! - `ocsp_fetch`: OCSP responses fetched from the responders and kept fresh.
//! - `report`: what a reload did, as log lines and as JSON.
//! - `table`: plain-text tables for terminal output (certificates, reload reports).
//! - `watch`: reloads when a file the configuration reads changes (`watch = true`).

pub mod admin;
pub mod advice;
pub mod client;
pub mod console;
pub mod metrics;
pub mod notify;
pub mod ocsp_fetch;
pub mod report;
pub mod table;
pub mod watch;
