//! Client-side timeouts and limits: header and idle timeouts, max_connections, the size of
//! request headers, long streams and WebSockets: the real binary, real clients.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gatehouse_tests::upstream::rt;
use gatehouse_tests::{STEP_TIMEOUT, connect, connect_with, inspecting_client_config};
use http_body_util::{BodyExt, Empty};
use support::clients::*;
use support::deploy::{portal_and_engine, text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn slowloris_is_closed_by_the_header_timeout() {
    let (_env, g) = portal_and_engine("header_timeout = 1");
    let addr = g.addr("web");
    rt().block_on(async {
        let (mut tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
        tls.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\nX-Slow: ")
            .await
            .expect("write");
        tls.flush().await.expect("flush");
        let started = Instant::now();
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut buf)).await;
        assert!(
            closed.is_ok(),
            "the proxy must close a connection that never finishes its headers"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "closed by the timer, not at once"
        );
    });
}

#[test]
fn a_keep_alive_connection_waits_idle_timeout_not_header_timeout_for_its_next_request() {
    let (_env, g) = portal_and_engine("header_timeout = 1\nidle_timeout = 30");
    let addr = g.addr("web");
    rt().block_on(async {
        let (mut send, _, _) = portal_keep_alive(addr).await;
        for round in 0..2 {
            let resp = tokio::time::timeout(STEP_TIMEOUT, get_portal(&mut send))
                .await
                .expect("in time")
                .unwrap_or_else(|e| {
                    panic!("request {round} on the kept-alive connection failed: {e}")
                });
            assert_eq!(resp.status(), 200);
            let _ = resp.into_body().collect().await;
            // Longer than header_timeout (1 s) plus its tick, well under idle_timeout.
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    });
}

#[test]
fn idle_keep_alive_connections_are_closed_after_idle_timeout() {
    let (_env, g) = portal_and_engine("idle_timeout = 2");
    let addr = g.addr("web");
    rt().block_on(async {
        let (mut send, conn) = portal_h2(addr).await;
        let req = http::Request::get("https://portal.test/")
            .body(Empty::<bytes::Bytes>::new())
            .expect("req");
        let resp = send.send_request(req).await.expect("request");
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await;
        let started = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(8), conn).await;
        assert!(
            closed.is_ok(),
            "an idle HTTP/2 connection must be closed:\n{}",
            g.log_text()
        );
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "not before idle_timeout: {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn a_client_that_never_sends_a_request_is_closed_after_idle_timeout() {
    let (_env, g) = portal_and_engine("idle_timeout = 2");
    let addr = g.addr("web");
    rt().block_on(async {
        let config = inspecting_client_config(&[b"http/1.1"]);
        let (mut tls, _) = connect_with(config, addr, Some("portal.test"))
            .await
            .expect("handshake");
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(8), tls.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection must be closed: {read:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "not before idle_timeout: {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn oversized_request_headers_get_431() {
    let (env, g) = portal_and_engine("");
    let big = format!("X-Big: {}", "a".repeat(70 * 1024));
    let out = env.curl(
        g.addr("web"),
        "portal.test",
        "/",
        &[
            "--http1.1",
            "-H",
            &big,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "431",
        "{}",
        text(&out)
    );
}

#[test]
fn max_connections_holds_extra_clients_until_a_slot_frees() {
    let (_env, g) = portal_and_engine("max_connections = 1");
    let addr = g.addr("web");
    rt().block_on(async {
        let (first, _) = connect(addr, Some("portal.test"))
            .await
            .expect("first connection");
        let second = tokio::time::timeout(
            Duration::from_millis(700),
            connect(addr, Some("portal.test")),
        )
        .await;
        assert!(
            second.is_err(),
            "a second connection waits while the only slot is taken"
        );
        drop(first);
        let second = tokio::time::timeout(STEP_TIMEOUT, connect(addr, Some("portal.test"))).await;
        assert!(
            matches!(second, Ok(Ok(_))),
            "it is served once the slot frees"
        );
    });
}

#[test]
fn a_stream_with_gaps_longer_than_idle_timeout_is_not_cut() {
    let (env, g) = portal_and_engine("idle_timeout = 2");
    let out = env.curl(g.addr("web"), "portal.test", "/drip/2/3500", &["--http2"]);
    assert_eq!(
        text(&out),
        "chunk 0\nchunk 1\n",
        "a response in progress is not idle"
    );
}

#[test]
fn websockets_hold_their_connection_slot() {
    let (_env, g) = portal_and_engine("max_connections = 1");
    let addr = g.addr("web");
    rt().block_on(async {
        let (mut ws, _) = portal_websocket(addr).await;
        ws.send(Message::text("hi")).await.expect("send");
        let echo = tokio::time::timeout(STEP_TIMEOUT, ws.next()).await;
        assert!(
            matches!(&echo, Ok(Some(Ok(m))) if m.to_text().ok() == Some("hi")),
            "the upgraded connection echoes: {echo:?}"
        );
        let second = tokio::time::timeout(
            Duration::from_millis(700),
            connect(addr, Some("portal.test")),
        )
        .await;
        assert!(second.is_err(), "the WebSocket still holds the only slot");
        drop(ws);
        let second = tokio::time::timeout(STEP_TIMEOUT, connect(addr, Some("portal.test"))).await;
        assert!(
            matches!(second, Ok(Ok(_))),
            "the slot frees when the WebSocket ends"
        );
    });
}
