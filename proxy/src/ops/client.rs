//! The admin API's client: finds the running instance's admin API from the config and
//! POSTs to it, as `gatehouse reload` and `gatehouse certs install` do.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::admin::ADMIN_ADDR_FILE;
use crate::config::Config;

/// Bound on talking to the local admin API (a reload reads every certificate file).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the admin API could not be asked (by `gatehouse reload`, `certs install`, …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
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
pub async fn admin_post(config: &Config, path: &str) -> Result<(u16, Value), ClientError> {
    let addr = admin_addr(config).ok_or(ClientError::NoWayToReach)?;
    let token = match config.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| {
                    ClientError::Other(format!("cannot read token_file {}: {e}", p.display()))
                })?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let fail = |detail: String| ClientError::Admin { addr, detail };
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
            if let Some(done) = c["completed"].as_array() {
                detail.extend(done.iter().filter_map(|d| d.as_str()).map(str::to_owned));
            }
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
    super::table::render(&["NAME", "OUTCOME", "SERIAL", "NOT AFTER", "DETAIL"], &rows)
}
