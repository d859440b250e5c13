//! Clients for the tests: a keep-alive HTTP/1.1 and an HTTP/2 connection to the portal
//! through the proxy, and what a request on them answered; a WebSocket to the portal.

use gatehouse_tests::{STEP_TIMEOUT, connect, connect_with, inspecting_client_config};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

type KeepAlive = hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>;

/// A keep-alive HTTP/1.1 connection to portal.test, the certificate chain it was served,
/// and the task driving the connection, which ends when the connection closes.
pub async fn portal_keep_alive(
    addr: std::net::SocketAddr,
) -> (
    KeepAlive,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let (tls, chain) = connect(addr, Some("portal.test")).await.expect("handshake");
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    (send, chain, tokio::spawn(conn))
}

/// `GET /` for portal.test on `send`.
pub fn get_portal(
    send: &mut KeepAlive,
) -> impl Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>> + use<> {
    let req = http::Request::get("/")
        .header("host", "portal.test")
        .body(Empty::new())
        .expect("req");
    send.send_request(req)
}

/// An HTTP/2 connection to portal.test (ALPN checked); its connection task runs on `rt()`
/// and ends when the connection closes.
pub async fn portal_h2(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let config = inspecting_client_config(&[b"h2"]);
    let (tls, _) = connect_with(config, addr, Some("portal.test"))
        .await
        .expect("handshake");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "ALPN picks h2"
    );
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("h2");
    (send, tokio::spawn(conn))
}

/// `GET https://portal.test{path}` on an HTTP/2 connection: the body as text.
pub fn get_portal_h2(
    send: &hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>,
    path: &str,
) -> impl Future<Output = hyper::Result<String>> + use<> {
    get_h2(send, &format!("https://portal.test{path}"))
}

/// `GET url` on an HTTP/2 connection (`url`'s authority is the request's `:authority`):
/// the body as text.
pub fn get_h2(
    send: &hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>,
    url: &str,
) -> impl Future<Output = hyper::Result<String>> + use<> {
    let mut send = send.clone();
    let req = http::Request::get(url).body(Empty::new()).expect("req");
    async move {
        let resp = send.send_request(req).await?;
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// What a spawned [`get_portal_h2`] got, within `STEP_TIMEOUT`.
pub async fn body_of(task: tokio::task::JoinHandle<hyper::Result<String>>, what: &str) -> String {
    tokio::time::timeout(STEP_TIMEOUT, task)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in {STEP_TIMEOUT:?}"))
        .expect("client task")
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `curl -sS ARGS…` (20 s at most): the body, and the HTTP status code curl wrote after it.
pub fn curl_status(args: &[&str]) -> (String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = all.rsplit_once('\n').unwrap_or((&all, ""));
    (body.trim_end().to_owned(), code.to_owned())
}

/// A WebSocket to `wss://portal.test/chat` through the proxy at `addr`, on a new TLS
/// connection (the test upstream echoes there), and the upgrade's response; in
/// `STEP_TIMEOUT`.
pub async fn portal_websocket(
    addr: std::net::SocketAddr,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let (tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
    let url = format!("wss://portal.test:{}/chat", addr.port());
    tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("upgrade in time")
        .expect("websocket upgrade through the proxy")
}
