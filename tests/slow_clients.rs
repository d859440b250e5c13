//! Clients that stop reading, and bodies that stop coming, are bounded by the timeouts
//! meant for them (`send_timeout`, `upstream_timeout`), and take their upstream connection
//! with them; a WebSocket that is merely quiet is not one of them. The real binary, real
//! clients.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use gatehouse_tests::faults::tcp_flood;
use gatehouse_tests::upstream::{Watch, http_upstream_watched, rt};
use gatehouse_tests::{STEP_TIMEOUT, connect, connect_with, inspecting_client_config};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::clients::portal_websocket;
use support::deploy::{Env, WAIT};
use support::probes::{raw_http1, serve_portal};
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Waits until the upstream has seen one connection end: the proxy closed it.
fn upstream_closed(watch: &Watch, what: &str) {
    assert!(
        watch.wait(|s| s.closed >= 1, WAIT).is_some(),
        "{what}: the upstream connection is closed with the client's ({:?})",
        watch.now()
    );
}

#[test]
fn an_http1_client_that_stops_reading_is_closed_at_send_timeout_with_its_upstream() {
    let (upstream, watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "send_timeout = \"1s\"");
    rt().block_on(async {
        let (mut tls, _) = connect(g.addr("web"), Some("portal.test"))
            .await
            .expect("handshake");
        tls.write_all(b"GET /download/4294967296 HTTP/1.1\r\nHost: portal.test\r\n\r\n")
            .await
            .expect("request");
        // Reads nothing: the response fills the buffers on the way and stops.
        let started = Instant::now();
        upstream_closed(&watch, "HTTP/1.1");
        assert!(started.elapsed() >= Duration::from_millis(900));
        // The client's side is closed too: draining it ends.
        let mut sink = Vec::new();
        let drained = tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut sink)).await;
        assert!(drained.is_ok(), "the client connection ends");
    });
}

#[test]
fn an_http2_client_with_a_shut_window_is_closed_at_send_timeout() {
    let (upstream, watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "send_timeout = \"1s\"\nidle_timeout = 300");
    rt().block_on(async {
        let config = inspecting_client_config(&[b"h2"]);
        let (tls, _) = connect_with(config, g.addr("web"), Some("portal.test"))
            .await
            .expect("handshake");
        // A window of 0 bytes per stream: the response head can come, no DATA can.
        let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(0)
            .adaptive_window(false)
            .handshake(TokioIo::new(tls))
            .await
            .expect("h2");
        let conn = tokio::spawn(conn);
        let req = http::Request::get("https://portal.test/download/1048576")
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = tokio::time::timeout(STEP_TIMEOUT, send.send_request(req))
            .await
            .expect("a response head in time")
            .expect("response");
        assert_eq!(resp.status(), 200);
        upstream_closed(&watch, "HTTP/2");
        let ended = tokio::time::timeout(STEP_TIMEOUT, conn).await;
        assert!(ended.is_ok(), "the HTTP/2 connection is closed");
        drop(resp);
    });
}

#[test]
fn a_tcp_mode_client_that_stops_reading_is_closed_at_send_timeout_with_its_upstream() {
    let mut env = Env::new();
    env.certificate("collector", &["collector.test"]);
    let (upstream, watch) = tcp_flood();
    let config = env.config(&format!(
        "[[listener]]\nname = \"collector\"\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncertificates = [\"collector\"]\nupstream = \"tcp://{upstream}\"\nsend_timeout = \"1s\"\n"
    ));
    let g = Gatehouse::start(&config);
    rt().block_on(async {
        let (tls, _) = connect(g.addr("collector"), Some("collector.test"))
            .await
            .expect("handshake");
        assert!(
            watch.wait(|s| s.connections >= 1, WAIT).is_some(),
            "the stream reaches the upstream"
        );
        upstream_closed(&watch, "TCP mode");
        drop(tls);
    });
}

#[test]
fn a_request_body_that_stops_coming_is_cut_at_upstream_timeout() {
    let (upstream, _watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "upstream_timeout = \"1s\"");
    let started = Instant::now();
    let answer = rt().block_on(raw_http1(
        g.addr("web"),
        "POST /count HTTP/1.1\r\nHost: portal.test\r\nContent-Length: 1000\r\n\r\nonly ten b",
    ));
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_quiet_websocket_is_not_cut_by_send_timeout() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (upstream, _watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "send_timeout = \"1s\"\nidle_timeout = 60");
    let addr = g.addr("web");
    rt().block_on(async {
        let (mut ws, _) = portal_websocket(addr).await;
        // Nothing to send, nothing waiting for the client: three send_timeouts pass.
        tokio::time::sleep(Duration::from_secs(3)).await;
        ws.send(Message::text("still open")).await.expect("send");
        let echo = tokio::time::timeout(STEP_TIMEOUT, ws.next()).await;
        assert!(
            matches!(&echo, Ok(Some(Ok(m))) if m.to_text().ok() == Some("still open")),
            "{echo:?}"
        );
    });
}
