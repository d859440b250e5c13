//! The admin API: `/metrics`, `/healthz`, `/certs`, `POST /reload`, and the certificates
//! page (`super::console`) on every other path. HTTP/1.1 on a loopback address by default,
//! HTTPS with `[admin] certificate`; with a token file, every POST to the API needs
//! `Authorization: Bearer <token>` (compared in constant time), and the page a login.
//!
//! Browsers on the appliance must not be turned against it: a request from another
//! origin (`Origin`, `Sec-Fetch-Site`) is refused, and without a token only loopback host
//! names are answered (DNS rebinding). Clients are bounded: at most
//! [`MAX_CONNECTIONS`] at once, and [`HEADER_TIMEOUT`] to send a request head.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use certstore::{Store, Timestamp};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::console::Console;
use super::metrics::Metrics;
use super::report::{Reloaded, cert_json, log_reloaded, reloaded_json};
use crate::config::ConfigError;

/// What the admin API reads and drives: the running instance.
pub trait Control: Send + Sync + 'static {
    fn store(&self) -> &Store;
    fn metrics(&self) -> &Metrics;
    /// True once shutdown has started: `/healthz` answers 503.
    fn draining(&self) -> bool;
    /// Reloads the configuration and certificates. Blocks (reads files, may issue keys):
    /// the API calls it on tokio's blocking pool. A config that does not parse changes
    /// nothing and is the error. The implementer keeps what it answered for
    /// [`last_reload`](Self::last_reload).
    fn reload(&self) -> Result<Reloaded, ConfigError>;
    /// The configuration as running (reloads applied).
    fn config(&self) -> crate::config::Config;
    /// The file the configuration is read from.
    fn config_path(&self) -> &Path;
    /// The last reload's report (SIGHUP, API, watch or the certificates page), if any.
    fn last_reload(&self) -> Option<LastReload>;
}

/// A reload as the certificates page shows it.
#[derive(Debug, Clone)]
pub struct LastReload {
    pub at: Timestamp,
    /// What `POST /reload` answered: [`reloaded_json`], or `{"error": …}` for a config that
    /// did not parse.
    pub report: Value,
}

impl LastReload {
    pub fn of(result: &Result<Reloaded, ConfigError>, at: Timestamp) -> Self {
        let report = match result {
            Ok(reloaded) => reloaded_json(reloaded),
            Err(e) => json!({ "error": e.to_string() }),
        };
        Self { at, report }
    }
}

/// The admin token file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("[admin] token_file {}: {detail}", path.display())]
pub struct TokenError {
    pub path: std::path::PathBuf,
    pub detail: String,
}

/// Reads the admin token: the file's text without surrounding white space.
pub fn read_token(path: &Path) -> Result<Vec<u8>, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenError {
        path: path.to_owned(),
        detail: format!("cannot read it: {e}"),
    })?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(TokenError {
            path: path.to_owned(),
            detail: "the token is shorter than 16 characters; write a long random one (e.g. `openssl rand -hex 32`)".into(),
        });
    }
    Ok(token.as_bytes().to_vec())
}

/// [`reload_now`] on tokio's blocking pool: a reload reads files and may issue keys, which
/// must not stall the runtime. What SIGHUP, the watcher, `POST /reload` and the
/// certificates page's Reload run.
pub async fn reload_blocking<C: Control>(control: Arc<C>) -> Result<Reloaded, ConfigError> {
    match tokio::task::spawn_blocking(move || reload_now(&*control)).await {
        Ok(result) => result,
        // The reload panicked: a bug, but serving goes on with the previous snapshot.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Reloads now: systemd is told, the outcome logged. Blocks: call it on the blocking pool
/// (or through [`reload_blocking`]).
pub fn reload_now<C: Control + ?Sized>(control: &C) -> Result<Reloaded, ConfigError> {
    super::notify::reloading();
    let reloaded = control.reload();
    super::notify::ready(&super::notify::status(
        &control.store().snapshot(),
        Timestamp::now(),
    ));
    match &reloaded {
        Ok(r) => log_reloaded(r),
        Err(e) => tracing::error!("reload refused, nothing changed: {e}"),
    }
    reloaded
}

/// Admin connections served at once; more wait in the kernel's queue. Operators and
/// scrapers need a handful; a flood must not take the proxy's file descriptors.
pub const MAX_CONNECTIONS: usize = 64;
/// The time a client has to send a request head (and between requests).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The file in `state_dir` where a running instance writes its admin address, so that
/// `gatehouse reload` finds it even when the config says port 0.
pub const ADMIN_ADDR_FILE: &str = "admin.addr";

/// The bearer token every POST needs, when `token_file` is set; swapped at reload.
pub type Token = Arc<arc_swap::ArcSwapOption<Vec<u8>>>;

/// Serves the admin API until `stop`; over TLS with `tls` (`[admin] certificate`).
pub async fn serve<C: Control>(
    socket: TcpListener,
    inner: Arc<C>,
    token: Token,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let console = Arc::new(Console::new(tls.is_some(), &inner.config()));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    loop {
        let accepted = async {
            let permit = permits.clone().acquire_owned().await.ok()?;
            Some((socket.accept().await, permit))
        };
        let (tcp, permit) = tokio::select! {
            r = accepted => match r {
                Some((Ok((tcp, _)), permit)) => (tcp, permit),
                Some((Err(_), _)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
                None => break,
            },
            _ = stop.cancelled() => break,
        };
        let (inner, token, console) = (inner.clone(), token.clone(), console.clone());
        let service = hyper::service::service_fn(move |req| {
            let (inner, token, console) = (inner.clone(), token.clone(), console.clone());
            async move {
                let token = token.load_full();
                let token = token.as_deref().map(Vec::as_slice);
                Ok::<_, Infallible>(handle(req, inner, token, &console).await)
            }
        });
        let http = http.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                }
                Some(acceptor) => {
                    // The handshake gets the time a request head gets.
                    let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp));
                    if let Ok(Ok(stream)) = handshake.await {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
            drop(permit);
        });
    }
}

pub(super) fn respond(
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

/// Why a request is refused before it is looked at, if it is: it comes from another
/// origin than the admin API's own, or (without a token) names a host that is not
/// loopback, as a page on an attacker's domain resolving to 127.0.0.1 would.
fn foreign(req: &Request<Incoming>, token: Option<&[u8]>, tls: bool) -> Option<&'static str> {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let scheme = if tls { "https://" } else { "http://" };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = host.is_some_and(|h| {
            origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix(scheme))
                .is_some_and(|o| o.eq_ignore_ascii_case(h))
        });
        if !own {
            return Some("request from another origin refused");
        }
    }
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if fetch_site.is_some_and(|s| s != b"same-origin" && s != b"none") {
        return Some("cross-site request refused");
    }
    if token.is_none() && host.is_some_and(|h| !is_loopback_host(h)) {
        return Some(
            "this admin API answers loopback host names only (set token_file to use another)",
        );
    }
    None
}

/// `localhost` (and its subdomains), or a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn handle<C: Control>(
    req: Request<Incoming>,
    inner: Arc<C>,
    token: Option<&[u8]>,
    console: &Console,
) -> Response<Full<Bytes>> {
    if let Some(why) = foreign(&req, token, console.tls()) {
        return json_response(StatusCode::FORBIDDEN, &json!({ "error": why }));
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            inner.metrics().render(),
        ),
        (&Method::GET, "/healthz") => {
            if inner.draining() {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n")
            } else {
                respond(StatusCode::OK, "text/plain", "ok\n")
            }
        }
        (&Method::GET, "/certs") => {
            let now = Timestamp::now();
            let snapshot = inner.store().snapshot();
            let certs: Vec<Value> = snapshot
                .certificates()
                .map(|c| cert_json(c, snapshot.stale(&c.name), now))
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
            match reload_blocking(inner.clone()).await {
                Ok(reloaded) => {
                    let status = if reloaded.is_clean() {
                        StatusCode::OK
                    } else {
                        StatusCode::CONFLICT
                    };
                    json_response(status, &reloaded_json(&reloaded))
                }
                Err(e) => json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({"error": e.to_string()}),
                ),
            }
        }
        (_, "/metrics" | "/healthz" | "/certs" | "/reload") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
        _ => console.handle(req, inner, token).await,
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_host_names_and_addresses_are_told_from_others() {
        for host in [
            "127.0.0.1:9900",
            "127.0.0.1",
            "[::1]:9900",
            "localhost:9900",
            "LOCALHOST",
            "gatehouse.localhost",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:9900",
            "192.0.2.1",
            "[2001:db8::1]:9900",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
