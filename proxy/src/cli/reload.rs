//! `gatehouse reload --config FILE`: asks the running instance to reload (admin API, or
//! SIGHUP through `pid_file` when the admin API is off) and prints the report.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::{exit, table};
use crate::config::Config;
use crate::server::ADMIN_ADDR_FILE;

/// Bound on talking to the local admin API (a reload reads every certificate file).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Why `gatehouse reload` could not ask for a reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadCommandError {
    #[error("cannot reach the admin API at {addr}: {detail}; is gatehouse running?")]
    Admin { addr: SocketAddr, detail: String },
    #[error(
        "the admin API is off and no pid_file is configured: nothing tells where gatehouse runs; set [admin] or pid_file"
    )]
    NoWayToReach,
    #[error("pid_file {}: {detail}", path.display())]
    PidFile {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("{0}")]
    Other(String),
}

/// Where the running instance's admin API is: the configured address, or the one it wrote
/// to `state_dir` when the configuration says port 0.
pub fn admin_addr(config: &Config) -> Option<SocketAddr> {
    let admin = config.admin.as_ref()?;
    let mut addr = admin.listen;
    if addr.port() == 0 {
        let text = std::fs::read_to_string(config.state_dir.join(ADMIN_ADDR_FILE)).ok()?;
        addr = text.trim().parse().ok()?;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(addr)
}

/// POSTs to the admin API; returns the status and the JSON body.
pub async fn admin_post(config: &Config, path: &str) -> Result<(u16, Value), ReloadCommandError> {
    let addr = admin_addr(config).ok_or(ReloadCommandError::NoWayToReach)?;
    let token = match config.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| {
                    ReloadCommandError::Other(format!(
                        "cannot read token_file {}: {e}",
                        p.display()
                    ))
                })?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let fail = |detail: String| ReloadCommandError::Admin { addr, detail };
    let exchange = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = http::Request::post(path).header(http::header::HOST, addr.to_string());
        if let Some(t) = &token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, json))
    };
    tokio::time::timeout(ADMIN_TIMEOUT, exchange)
        .await
        .map_err(|_| fail("no answer in time".into()))?
}

/// Renders a reload report (the admin API's JSON) as a table.
pub fn report_table(report: &Value) -> String {
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = report["certificates"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|c| {
            let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            let serial = match (
                c["before"]["serial"].as_str(),
                c["after"]["serial"].as_str(),
            ) {
                (Some(b), Some(a)) if a != b => format!("{b} -> {a}"),
                (_, Some(a)) => a.to_owned(),
                (Some(b), None) => b.to_owned(),
                _ => "-".into(),
            };
            let mut detail: Vec<String> =
                c["error"].as_str().map(str::to_owned).into_iter().collect();
            if let Some(w) = c["warnings"].as_array() {
                detail.extend(
                    w.iter()
                        .filter_map(|w| w.as_str())
                        .map(|w| format!("warning: {w}")),
                );
            }
            vec![
                s(&c["name"]),
                s(&c["outcome"]),
                serial,
                s(&c["after"]["not_after"]),
                if detail.is_empty() {
                    "-".into()
                } else {
                    detail.join("; ")
                },
            ]
        })
        .collect();
    table::render(&["NAME", "OUTCOME", "SERIAL", "NOT AFTER", "DETAIL"], &rows)
}

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

fn signal_pid_file(config: &Config) -> Result<i32, ReloadCommandError> {
    let path = config
        .pid_file
        .as_ref()
        .ok_or(ReloadCommandError::NoWayToReach)?;
    let fail = |detail: String| ReloadCommandError::PidFile {
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
