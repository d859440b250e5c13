//! Gatehouse, the TLS-terminating reverse proxy: listeners, handshakes and forwarding.
//! Certificates come from [`certstore`]; this crate knows sockets.
//!
//! # Layout
//! The modules stand on floors; each imports only from the floors below it:
//! 1. `config`: the TOML file → a checked [`config::Config`]; upstream URLs; the host's
//!    names. `exit`: the exit codes the commands promise to scripts.
//! 2. `ops`: metrics, the admin API and its client, reload reports.
//! 3. `serve`: worker threads, listeners, TLS, timeouts and forwarding.
//! 4. `certs`: the `gatehouse certs` chores, backups and the internal CA.
//! 5. `server`: a running instance ([`server::Running`]): start, reload, drain.
//! 6. `cli`: the command line, calling the above.

#![forbid(unsafe_code)]

// Public: the command line (for `main.rs`), the TLS setup the tests and benches drive, and
// the entry points of the fuzz targets. Everything else is the crate's own.
mod certs;
pub mod cli;
mod config;
#[doc(hidden)]
pub mod fuzz;
mod ops;
pub mod serve;
mod server;

/// Process exit codes the subcommands promise to scripts.
pub(crate) mod exit {
    /// Everything fine.
    pub const OK: i32 = 0;
    /// The check or operation found problems (details printed).
    pub const PROBLEMS: i32 = 1;
}
