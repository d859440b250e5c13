//! The `gatehouse` subcommands. `main.rs` parses the command line and calls these.
//!
//! # Layout
//! - `run`: serve until SIGTERM/SIGINT, reload on SIGHUP.
//! - `certs`: inspect, list, csr, install, backups, restore, export-ca.
//! - `check`: load everything as `run` would and report (like `nginx -t`).
//! - `reload`: ask the running instance to reload and print the report.
//! - `demo`: a throwaway CA, three upstreams and Gatehouse in front of them.
//! - `table`: plain-text tables for terminal output.

pub mod certs;
pub mod check;
pub mod demo;
pub mod reload;
pub mod run;
pub mod table;

/// Process exit codes the subcommands promise to scripts.
pub mod exit {
    /// Everything fine.
    pub const OK: i32 = 0;
    /// The check or operation found problems (details printed).
    pub const PROBLEMS: i32 = 1;
}
