//! HTTP/1.1 keep-alive connections between requests. While a client idles (from 100 ms
//! after its round of requests began), Gatehouse takes its connection back from hyper
//! (whose buffers are freed) and hands it to a new hyper connection when the client sends
//! again; these tests drive the edges of that
//! hand-over with a raw TLS client against the real binary: bytes of a next request that
//! came early, request bodies the upstream did or did not read, a WebSocket frame sent
//! with the upgrade request, and a request head that stalls after a kept-alive request.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gatehouse_tests::upstream::rt;
use gatehouse_tests::{STEP_TIMEOUT, connect};
use support::deploy::{Env, portal_and_engine, portal_and_engine_env};
use support::process::Gatehouse;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// A raw HTTP/1.1 client on one TLS connection: writes bytes as given, reads responses
/// with a Content-Length body (what the test upstream sends), however they share reads.
struct Client<S> {
    tls: S,
    got: Vec<u8>,
}

/// A new TLS connection to portal.test at `addr`.
async fn client(addr: std::net::SocketAddr) -> Client<impl AsyncRead + AsyncWrite + Unpin> {
    let (tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
    Client {
        tls,
        got: Vec::new(),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).await.expect("write");
        self.tls.flush().await.expect("flush");
    }

    /// The next response's head and body. Bounded: a server that never finishes one fails
    /// the test instead of hanging it.
    async fn response(&mut self) -> (String, String) {
        const MAX_READS: usize = 64;
        let mut buf = [0; 4096];
        for _ in 0..MAX_READS {
            if let Some(end) = self.got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.got[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or_else(|| panic!("a Content-Length: {head}"));
                if self.got.len() >= end + 4 + length {
                    let whole: Vec<u8> = self.got.drain(..end + 4 + length).collect();
                    let body = String::from_utf8_lossy(&whole[end + 4..]).to_string();
                    return (head, body);
                }
            }
            let n = tokio::time::timeout(STEP_TIMEOUT, self.tls.read(&mut buf))
                .await
                .expect("the response comes in time")
                .expect("read");
            assert!(
                n > 0,
                "the connection stays open: {:?}",
                String::from_utf8_lossy(&self.got)
            );
            self.got.extend_from_slice(&buf[..n]);
        }
        panic!("no whole response within {MAX_READS} reads");
    }

    /// Asserts the next response is a 200 whose body contains `expected`, and that nothing
    /// else came with it.
    async fn ok(&mut self, expected: &str) {
        let (head, body) = self.response().await;
        assert!(head.starts_with("HTTP/1.1 200"), "{expected}: {head}");
        assert!(body.contains(expected), "{expected}: {body}");
    }
}

/// Gatehouse logging the end of each round of requests (hyper's state given back).
fn logging_rounds(extra: &str) -> (Env, Gatehouse) {
    portal_and_engine_env(
        extra,
        &[(
            "GATEHOUSE_LOG",
            "info,proxy::serve::forward::http::h1=trace",
        )],
    )
}

const GIVEN_BACK: &str = "state given back";

/// Waits (bounded) until `n` rounds have ended with the client between requests, and
/// returns the last one's log line: the client has paused long enough (a round lasts at
/// least 100 ms) for its connection to give hyper's state back.
fn wait_for_rounds(g: &Gatehouse, n: usize) -> String {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let ended: Vec<String> = g
            .log_lines()
            .into_iter()
            .filter(|l| l.contains(GIVEN_BACK))
            .collect();
        if ended.len() >= n {
            return ended[n - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{n} rounds ended between requests within {STEP_TIMEOUT:?}, {} did",
            ended.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn requests_on_one_connection_are_answered_across_idle_pauses_and_early_bytes() {
    let (_env, g) = logging_rounds("");
    let addr = g.addr("web");
    rt().block_on(async {
        let mut c = client(addr).await;
        // The first request, and the start of the second in the same write: hyper has read
        // it when the first response is done, and hands it over with the connection.
        c.send(
            b"GET /first HTTP/1.1\r\nHost: portal.test\r\n\r\nGET /second HTTP/1.1\r\nHost: por",
        )
        .await;
        c.ok("path=/first\n").await;
        let ended = wait_for_rounds(&g, 1);
        assert!(
            ended.contains("read_ahead=31"),
            "the second head's first bytes were handed over: {ended}"
        );
        c.send(b"tal.test\r\n\r\n").await;
        c.ok("path=/second\n").await;

        // A body the upstream reads to its end: the connection is between requests after it.
        c.send(b"POST /count HTTP/1.1\r\nHost: portal.test\r\nContent-Length: 5\r\n\r\nhello")
            .await;
        c.ok("count=5").await;
        assert!(wait_for_rounds(&g, 2).contains("read_ahead=0"));

        // Three whole requests in one write are answered in order.
        c.send(
            b"GET /a HTTP/1.1\r\nHost: portal.test\r\n\r\n\
              GET /b HTTP/1.1\r\nHost: portal.test\r\n\r\n\
              GET /c HTTP/1.1\r\nHost: portal.test\r\n\r\n",
        )
        .await;
        for path in ["/a", "/b", "/c"] {
            c.ok(&format!("path={path}\n")).await;
        }
        wait_for_rounds(&g, 3);

        // A body the upstream ignores: hyper drains it, and keeps the connection from then.
        c.send(b"POST /ignored HTTP/1.1\r\nHost: portal.test\r\nContent-Length: 5\r\n\r\nhello")
            .await;
        c.ok("path=/ignored\n").await;
        c.send(b"GET /after HTTP/1.1\r\nHost: portal.test\r\n\r\n")
            .await;
        c.ok("path=/after\n").await;
        assert!(c.got.is_empty(), "nothing but the responses asked for");
    });
}

#[test]
fn a_websocket_frame_sent_with_the_upgrade_request_is_echoed() {
    let (_env, g) = portal_and_engine("");
    let addr = g.addr("web");
    rt().block_on(async {
        let (mut tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
        // A client frame is masked (RFC 6455 5.3).
        let mut frame =
            Frame::message(Bytes::from_static(b"early"), OpCode::Data(Data::Text), true);
        frame.header_mut().mask = Some([7, 1, 9, 4]);
        let mut bytes = b"GET /chat HTTP/1.1\r\nHost: portal.test\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n\r\n"
            .to_vec();
        frame.format(&mut bytes).expect("frame");
        tls.write_all(&bytes).await.expect("write");
        // The 101's head, a byte at a time: what follows it belongs to the WebSocket.
        let mut head = Vec::new();
        const MAX_HEAD: usize = 4096;
        while !head.ends_with(b"\r\n\r\n") {
            assert!(head.len() < MAX_HEAD, "a 101 head: {head:?}");
            let b = tokio::time::timeout(STEP_TIMEOUT, tls.read_u8())
                .await
                .expect("the 101 in time")
                .expect("read");
            head.push(b);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let mut ws = WebSocketStream::from_raw_socket(tls, Role::Client, None).await;
        for (sent, msg) in [(false, "early"), (true, "later")] {
            if sent {
                ws.send(Message::text(msg)).await.expect("send");
            }
            let echo = tokio::time::timeout(STEP_TIMEOUT, ws.next())
                .await
                .expect("echo in time");
            assert_eq!(
                echo.expect("frame").expect("message"),
                Message::text(msg),
                "the frame sent with the upgrade request reaches the upstream"
            );
        }
        let _ = ws.close(None).await;
    });
}

#[test]
fn a_request_head_that_stalls_after_a_kept_alive_request_is_closed_by_the_header_timeout() {
    let (_env, g) = logging_rounds("header_timeout = 1\nidle_timeout = 30");
    let addr = g.addr("web");
    // The stalled head comes at once (hyper's connection of the first request reads it),
    // then after a pause (a new round's connection reads it).
    for pause in [false, true] {
        rt().block_on(async {
            let mut c = client(addr).await;
            c.send(b"GET /first HTTP/1.1\r\nHost: portal.test\r\n\r\n")
                .await;
            c.ok("path=/first\n").await;
            if pause {
                wait_for_rounds(&g, g.log_count(GIVEN_BACK) + 1);
            }
            c.send(b"GET /second HTTP/1.1\r\nHost: portal.test\r\nX-Slow: ")
                .await;
            let started = Instant::now();
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(STEP_TIMEOUT, c.tls.read_to_end(&mut rest)).await;
            assert!(
                closed.is_ok(),
                "a head that never ends is closed by header_timeout (1 s), not idle_timeout \
                 (30 s); after a pause: {pause}"
            );
            assert!(
                started.elapsed() >= Duration::from_millis(500),
                "closed by the timer, not at once: {:?}; after a pause: {pause}",
                started.elapsed()
            );
        });
    }
}

/// Waits (bounded) until the listener `web` has completed `n` handshakes.
fn wait_for_handshakes(g: &Gatehouse, n: usize) {
    let series = r#"gatehouse_tls_handshakes_total{listener="web",result="ok"}"#;
    let deadline = Instant::now() + STEP_TIMEOUT;
    while g.metric(series).unwrap_or(0.0) < n as f64 {
        assert!(
            Instant::now() < deadline,
            "{n} handshakes within {STEP_TIMEOUT:?}: {:?}",
            g.metric(series)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_connection_idle_after_a_request_holds_about_what_a_silent_one_holds() {
    // Enough connections that what each holds stands well above the allocator's steps.
    const N: usize = 300;
    // hyper's per-connection HTTP/1.1 state alone is over 16 KiB (an 8 KiB read and an
    // 8 KiB write buffer); given back while the connection idles, what stays for the
    // request served (the HTTP/1.1 connection's own small state) is well under this.
    const MAX_EXTRA_KIB: f64 = 6.0;
    let (_env, g) = logging_rounds("");
    let addr = g.addr("web");
    let open = |n: usize, request: bool| {
        rt().block_on(async move {
            let mut held = Vec::new();
            for _ in 0..n {
                let mut c = client(addr).await;
                if request {
                    c.send(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n").await;
                    c.ok("path=/\n").await;
                }
                held.push(c);
            }
            held
        })
    };
    // Warm-up: the upstream pool, and what every later request reuses.
    let warm = open(1, true);
    let base = g.pss_kib() as f64;
    let silent = open(N, false);
    wait_for_handshakes(&g, N + 1);
    let mid = g.pss_kib() as f64;
    let used = open(N, true);
    // The warm-up's connection and each of these give hyper's state back.
    wait_for_rounds(&g, N + 1);
    let after = g.pss_kib() as f64;
    let silent_each = (mid - base) / N as f64;
    let used_each = (after - mid) / N as f64;
    assert!(
        used_each <= silent_each + MAX_EXTRA_KIB,
        "a connection idle after one request holds {used_each:.1} KiB, one that never \
         sent a request {silent_each:.1} KiB: hyper's buffers are given back between requests"
    );
    drop((warm, silent, used));
}
