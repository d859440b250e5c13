//! The admin API: `/metrics`, `/healthz`, `/certs`, `POST /reload`. Plain HTTP/1.1 on a
//! loopback address by default; with a token file, every POST needs
//! `Authorization: Bearer <token>` (compared in constant time).

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use certstore::{LoadedCert, Outcome, ReloadReport, Timestamp, Version};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::{Inner, Reloaded, StartError};

/// Reads the admin token: the file's text without surrounding white space.
pub fn read_token(path: &Path) -> Result<Vec<u8>, StartError> {
    let text = std::fs::read_to_string(path).map_err(|e| StartError::Token {
        path: path.to_owned(),
        detail: format!("cannot read it: {e}"),
    })?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(StartError::Token {
            path: path.to_owned(),
            detail: "the token is shorter than 16 characters; write a long random one (e.g. `openssl rand -hex 32`)".into(),
        });
    }
    Ok(token.as_bytes().to_vec())
}

/// Serves the admin API until `stop`.
pub(crate) async fn serve(
    socket: TcpListener,
    inner: Arc<Inner>,
    token: Option<Vec<u8>>,
    stop: CancellationToken,
) {
    let token: Arc<Option<Vec<u8>>> = Arc::new(token);
    loop {
        let (tcp, _) = tokio::select! {
            r = socket.accept() => match r {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let inner = inner.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                let token = token.clone();
                async move { Ok::<_, Infallible>(handle(req, inner, token.as_ref().as_deref()).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    respond(status, "application/json", text)
}

fn authorized(req: &Request<Incoming>, token: Option<&[u8]>) -> bool {
    let Some(expected) = token else {
        return true;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    aws_lc_rs::constant_time::verify_slices_are_equal(presented, expected).is_ok()
}

async fn handle(
    req: Request<Incoming>,
    inner: Arc<Inner>,
    token: Option<&[u8]>,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            inner.metrics.render(),
        ),
        (&Method::GET, "/healthz") => {
            if inner.draining.load(Ordering::SeqCst) {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
            } else {
                respond(StatusCode::OK, "text/plain", "ok\n")
            }
        }
        (&Method::GET, "/certs") => {
            let now = Timestamp::now();
            let certs: Vec<Value> = inner
                .store()
                .snapshot()
                .certificates()
                .map(|c| cert_json(c, now))
                .collect();
            json_response(StatusCode::OK, &Value::Array(certs))
        }
        (&Method::POST, "/reload") => {
            if !authorized(&req, token) {
                tracing::warn!("admin: POST /reload without a valid token refused");
                return json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": "missing or wrong bearer token; send Authorization: Bearer <token from token_file>"}),
                );
            }
            match crate::server::reload_blocking(inner.clone()).await {
                Ok(reloaded) => {
                    crate::server::log_reloaded(&reloaded);
                    let status = if reloaded.is_clean() {
                        StatusCode::OK
                    } else {
                        StatusCode::CONFLICT
                    };
                    json_response(status, &reloaded_json(&reloaded))
                }
                Err(e) => {
                    tracing::error!("reload refused, nothing changed: {e}");
                    json_response(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &json!({"error": e.to_string()}),
                    )
                }
            }
        }
        (_, "/metrics" | "/healthz" | "/certs" | "/reload") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /metrics, /healthz, /certs or POST /reload\n",
        ),
    }
}

/// One served certificate as `/certs` shows it. Never key material.
pub fn cert_json(cert: &LoadedCert, now: Timestamp) -> Value {
    let leaf = cert.leaf();
    json!({
        "name": cert.name,
        "names": leaf.names(),
        "subject": leaf.subject,
        "issuer": leaf.issuer,
        "serial": leaf.serial,
        "not_before": leaf.not_before.to_string(),
        "not_after": leaf.not_after.to_string(),
        "days_left": leaf.days_left(now),
        "sha256_fingerprint": leaf.fingerprint_sha256,
        "key": leaf.key,
        "chain": cert.chain.iter().map(|c| c.subject.clone()).collect::<Vec<_>>(),
        "warnings": cert.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        "source_files": cert.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "loaded_at": cert.loaded_at.to_string(),
    })
}

fn version_json(v: &Version) -> Value {
    json!({"serial": v.serial, "not_after": v.not_after.to_string()})
}

/// A reload report as JSON: what `POST /reload` answers and `gatehouse reload` prints.
pub fn report_json(report: &ReloadReport) -> Value {
    let certs: Vec<Value> = report
        .entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "name": e.name,
                "outcome": e.outcome.as_str(),
                "warnings": e.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            });
            let (before, after) = match &e.outcome {
                Outcome::Added(a) => (None, Some(a)),
                Outcome::Updated { before, after } => (Some(before), Some(after)),
                Outcome::Unchanged(v) => (Some(v), Some(v)),
                Outcome::KeptPrevious { serving, .. } => (Some(serving), Some(serving)),
                Outcome::Removed(b) => (Some(b), None),
                _ => (None, None),
            };
            if let Some(b) = before {
                v["before"] = version_json(b);
            }
            if let Some(a) = after {
                v["after"] = version_json(a);
            }
            if let Some(err) = e.outcome.error() {
                v["error"] = Value::String(err.to_string());
            }
            v
        })
        .collect();
    json!({
        "clean": report.is_clean(),
        "generation": report.generation,
        "certificates": certs,
    })
}

fn reloaded_json(reloaded: &Reloaded) -> Value {
    let mut v = report_json(&reloaded.report);
    v["clean"] = json!(reloaded.is_clean());
    v["needs_restart"] = json!(reloaded.needs_restart);
    v["upstream_errors"] = json!(reloaded.upstream_errors);
    v
}
