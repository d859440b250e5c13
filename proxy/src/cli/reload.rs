//! `gatehouse reload --config FILE`: asks the running instance to reload (admin API, or
//! SIGHUP through `pid_file` when the admin API is off) and prints the report.

use std::path::Path;

use crate::config::Config;
use crate::exit;
use crate::ops::client::{ClientError, admin_post, report_table};

/// Runs `gatehouse reload`; returns the exit code.
pub async fn reload(config_path: &Path) -> i32 {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return exit::PROBLEMS;
        }
    };
    if config.admin.is_none() {
        return match signal_pid_file(&config) {
            Ok(pid) => {
                println!("sent SIGHUP to gatehouse (pid {pid}); the report is in its log");
                exit::OK
            }
            Err(e) => {
                eprintln!("{e}");
                exit::PROBLEMS
            }
        };
    }
    match admin_post(&config, "/reload").await {
        Ok((status, body)) => {
            if let Some(err) = body["error"].as_str() {
                eprintln!("reload refused ({status}): {err}");
                return exit::PROBLEMS;
            }
            print!("{}", report_table(&body));
            if let Some(r) = body["needs_restart"].as_array() {
                for w in r.iter().filter_map(|w| w.as_str()) {
                    println!("not applied: {w}");
                }
            }
            let upstream_errors: Vec<&str> = body["upstream_errors"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
                .unwrap_or_default();
            for e in &upstream_errors {
                eprintln!("upstream TLS kept its previous settings: {e}");
            }
            if status == 200 {
                exit::OK
            } else {
                eprintln!(
                    "not everything was applied (HTTP {status}): what failed keeps serving its previous version; see above"
                );
                exit::PROBLEMS
            }
        }
        Err(e) => {
            eprintln!("{e}");
            exit::PROBLEMS
        }
    }
}

fn signal_pid_file(config: &Config) -> Result<i32, ClientError> {
    let path = config.pid_file.as_ref().ok_or(ClientError::NoWayToReach)?;
    let fail = |detail: String| ClientError::PidFile {
        path: path.clone(),
        detail,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read it: {e}; is gatehouse running?")))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| fail(format!("\"{}\" is not a process id", text.trim())))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| fail(format!("cannot signal pid {pid}: {e}")))?;
    Ok(pid)
}
