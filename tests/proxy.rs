//! HTTP and TCP forwarding driven as a user would: the real binary, real clients (curl,
//! rustls, hyper, a WebSocket client), real upstreams, all on 127.0.0.1. What TLS clients
//! see of the handshake is in `tls_client_view.rs`.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use futures_util::{SinkExt, StreamExt};
use gatehouse_tests::upstream::{rt, tcp_echo_after_eof};
use gatehouse_tests::{STEP_TIMEOUT, connect, serial_of};
use support::clients::*;
use support::deploy::{Env, portal_and_engine, text};
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn http1_and_http2_requests_are_forwarded_with_proxy_headers() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = env.curl(
            addr,
            "portal.test",
            "/hello?x=1",
            &[
                flag,
                "-w",
                "\nhttp_version=%{http_version}\n",
                "-H",
                "Connection: keep-alive, X-Secret",
                "-H",
                "X-Secret: hop-only",
                "-H",
                "X-Forwarded-For: 203.0.113.7",
                "-H",
                "X-Forwarded-For: 198.51.100.1",
            ],
        );
        let body = text(&out);
        assert!(out.status.success(), "{body}");
        assert!(
            body.contains(&format!("http_version={version}")),
            "client spoke {version}: {body}"
        );
        for expected in [
            "upstream=portal".to_string(),
            "path=/hello?x=1".into(),
            format!("host: portal.test:{}", addr.port()),
            format!("x-forwarded-host: portal.test:{}", addr.port()),
            "x-forwarded-proto: https".into(),
            "x-forwarded-for: 203.0.113.7, 198.51.100.1, 127.0.0.1".into(),
        ] {
            assert!(
                body.contains(&expected),
                "{flag}: upstream must see {expected:?}:\n{body}"
            );
        }
        if version == "1.1" {
            // (HTTP/2 has no Connection header: curl sends X-Secret as an ordinary header.)
            assert!(
                !body.to_lowercase().contains("x-secret"),
                "headers named in Connection are hop-by-hop: {body}"
            );
        }
    }
}

#[test]
fn sni_routes_each_name_to_its_upstream_and_certificate() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    let out = env.curl(addr, "engine.test", "/", &[]);
    assert!(text(&out).contains("upstream=engine"), "{}", text(&out));
    let out = env.curl(addr, "portal.test", "/", &[]);
    assert!(text(&out).contains("upstream=portal"), "{}", text(&out));
    let (_, chain) = rt()
        .block_on(connect(addr, Some("engine.test")))
        .expect("handshake");
    assert_eq!(serial_of(&chain[0]), env.serials["engine"]);
    assert_eq!(chain.len(), 2, "the intermediate is always served");
}

#[test]
fn websocket_echo_works_end_to_end() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    drop(env);
    rt().block_on(async {
        let (mut ws, resp) = portal_websocket(addr).await;
        assert_eq!(resp.status(), 101);
        for msg in ["hello", "through gatehouse"] {
            ws.send(Message::text(msg)).await.expect("send");
            let echo = tokio::time::timeout(STEP_TIMEOUT, ws.next())
                .await
                .expect("echo in time");
            assert_eq!(echo.expect("frame").expect("message"), Message::text(msg));
        }
        let _ = ws.close(None).await;
    });
}

#[test]
fn a_256_mib_upload_streams_through_in_bounded_memory() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    const SIZE: u64 = 256 * 1024 * 1024;
    let script = format!(
        "head -c {SIZE} /dev/zero | curl -sS --max-time 120 --cacert {} --resolve portal.test:{port}:127.0.0.1 -T - https://portal.test:{port}/count",
        env.path().join("root.pem").display(),
        port = addr.port()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    assert!(
        text(&out).contains(&format!("count={SIZE}")),
        "{}",
        text(&out)
    );
    let peak_mib = g.peak_rss_kib() / 1024;
    eprintln!("peak RSS of the proxy after a 256 MiB upload: {peak_mib} MiB");
    assert!(
        peak_mib < 96,
        "the proxy must stream, not buffer: peak RSS {peak_mib} MiB for a 256 MiB upload"
    );
}

#[test]
fn tcp_mode_pipes_bytes_and_honours_half_close() {
    let mut env = Env::new();
    env.certificate("collector", &["collector.test"]);
    let upstream = tcp_echo_after_eof();
    let config = env.config(&format!(
        "[[listener]]\nname = \"collector\"\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncertificates = [\"collector\"]\nupstream = \"tcp://{upstream}\"\n"
    ));
    let g = Gatehouse::start(&config);
    let addr = g.addr("collector");
    rt().block_on(async {
        let (mut tls, _) = connect(addr, Some("collector.test"))
            .await
            .expect("handshake");
        tls.write_all(b"binary channel payload")
            .await
            .expect("write");
        // Half-close: we are done sending, the upstream answers only after that.
        tls.shutdown().await.expect("shutdown write side");
        let mut reply = Vec::new();
        tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut reply))
            .await
            .expect("reply in time")
            .ok();
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "got 22 bytes: binary channel payload"
        );
    });
}

#[test]
fn each_http2_request_reaches_the_upstream_with_its_own_authority_as_host() {
    // Requests of one connection share the Host value made for the first; one that names
    // the host differently (a port, another case) must still be sent as it named it.
    let (_env, g) = portal_and_engine("");
    let addr = g.addr("web");
    let port = addr.port();
    rt().block_on(async {
        let (send, _conn) = portal_h2(addr).await;
        for (i, authority) in [
            "portal.test".to_string(),
            "portal.test".into(),
            format!("portal.test:{port}"),
            "PORTAL.test".into(),
            "portal.test".into(),
        ]
        .iter()
        .enumerate()
        {
            let url = format!("https://{authority}/host/{i}");
            let body = body_of(tokio::spawn(get_h2(&send, &url)), &url).await;
            for expected in [
                format!("path=/host/{i}"),
                format!("host: {authority}\n"),
                format!("x-forwarded-host: {authority}\n"),
            ] {
                assert!(
                    body.contains(&expected),
                    "request {i} on one HTTP/2 connection must reach the upstream with \
                     {expected:?}:\n{body}"
                );
            }
        }
    });
}

/// A response that ends its connection arrives whole, with a clean TLS close, after a
/// keep-alive request on the same connection was answered at once.
#[test]
fn a_request_that_closes_the_connection_gets_its_whole_response_and_a_clean_tls_close() {
    let (_env, g) = portal_and_engine("");
    let addr = g.addr("web");
    rt().block_on(async {
        const MIB: usize = 1 << 20;
        for (first, last, body_len) in [
            (
                "",
                "GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n",
                0,
            ),
            ("", "GET / HTTP/1.0\r\nHost: portal.test\r\n\r\n", 0),
            (
                "GET /download/100 HTTP/1.1\r\nHost: portal.test\r\n\r\n",
                "GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: te, Close\r\n\r\n",
                0,
            ),
            (
                "",
                "GET /download/1048576 HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n",
                MIB,
            ),
        ] {
            let (mut tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
            if !first.is_empty() {
                tls.write_all(first.as_bytes()).await.expect("write");
                // Read the keep-alive response to its end: its head, then 100 bytes of body.
                let mut got = Vec::new();
                let mut buf = [0; 4096];
                let whole = |got: &[u8]| {
                    got.windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .is_some_and(|head| got.len() >= head + 4 + 100)
                };
                // A response of a few hundred bytes takes a few reads; the bound stops a
                // server that trickles bytes without ever finishing.
                const MAX_READS: usize = 64;
                for _ in 0..MAX_READS {
                    if whole(&got) {
                        break;
                    }
                    let n = tokio::time::timeout(STEP_TIMEOUT, tls.read(&mut buf))
                        .await
                        .expect("the keep-alive response comes without waiting for a close")
                        .expect("read");
                    assert!(
                        n > 0,
                        "the connection stays open after a keep-alive request"
                    );
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(
                    whole(&got),
                    "the keep-alive response ends within {MAX_READS} reads: {:?}",
                    String::from_utf8_lossy(&got)
                );
            }
            tls.write_all(last.as_bytes()).await.expect("write");
            let mut all = Vec::new();
            tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut all))
                .await
                .expect("the connection ends after the response")
                .unwrap_or_else(|e| panic!("{last:?}: the TLS close is clean: {e}"));
            let text = String::from_utf8_lossy(&all);
            assert!(
                text.starts_with("HTTP/1.") && text.contains(" 200 OK\r\n"),
                "{last:?}: the response arrives: {text}"
            );
            if body_len == 0 {
                assert!(
                    text.contains("upstream=portal"),
                    "{last:?}: the whole body: {text}"
                );
            } else {
                let head = text.find("\r\n\r\n").expect("a head") + 4;
                assert_eq!(
                    all.len() - head,
                    body_len,
                    "{last:?}: the whole body arrives"
                );
            }
        }
    });
}

#[test]
fn a_request_for_a_host_routed_elsewhere_on_a_reused_connection_gets_421() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    // The connection is for portal.test (SNI); the request says engine.test, which has its
    // own upstream.
    let out = env.curl(
        addr,
        "portal.test",
        "/",
        &[
            "-H",
            "Host: engine.test",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "421",
        "{}",
        text(&out)
    );
    let out = env.curl(
        addr,
        "portal.test",
        "/",
        &["-H", &format!("Host: PORTAL.test:{}", addr.port())],
    );
    assert!(
        text(&out).contains("upstream=portal"),
        "the connection's own host (any case, with port) is fine: {}",
        text(&out)
    );
}
