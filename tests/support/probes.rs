//! A portal deployment in front of a given upstream, and a raw HTTP/1.1 exchange with it:
//! what the tests of hostile clients and failing upstreams start from.

use std::net::SocketAddr;

use gatehouse_tests::{STEP_TIMEOUT, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::deploy::{Env, ListenerToml};
use super::process::Gatehouse;

/// One certificate, `portal`, for portal.test.
pub fn portal_env() -> Env {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    env
}

/// The `web` listener serving `portal` (portal.test) in front of `upstream`, with `lines`
/// added to it; the deployment lives as long as the returned `Env`.
pub fn serve_portal(upstream: SocketAddr, lines: &str) -> (Env, Gatehouse) {
    let env = portal_env();
    let listener = ListenerToml::http(upstream)
        .certificates(&["portal"])
        .set(lines);
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    (env, g)
}

/// Sends `request` (raw HTTP/1.1) on a new TLS connection for portal.test; the response's
/// status line and the rest.
pub async fn raw_http1(addr: SocketAddr, request: &str) -> String {
    let (mut tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(STEP_TIMEOUT, tls.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `GET /` for portal.test on a new TLS connection that closes after it: whether it was
/// answered 200 within `STEP_TIMEOUT`.
pub async fn get_on_new_connection(addr: SocketAddr) -> bool {
    let one = async {
        let (mut tls, _) = connect(addr, Some("portal.test")).await.ok()?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.ok()?;
        Some(got.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(STEP_TIMEOUT, one).await,
        Ok(Some(true))
    )
}
