//! Hostile clients and failing upstreams are bounded and blamed on the side that failed:
//! Host headers that disagree, malformed bodies, floods of bad handshakes and HTTP/2 resets,
//! health checks, running out of descriptors, abandoned handshakes, and the admin API
//! against browsers and floods. Clients that stop reading are in `slow_clients.rs`. The real binary, real clients.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use gatehouse_tests::upstream::{http_upstream_watched, rt};
use gatehouse_tests::{STEP_TIMEOUT, connect_with, inspecting_client_config};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::deploy::{ListenerToml, WAIT};
use support::probes::{get_on_new_connection, portal_env, raw_http1, serve_portal};
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn hosts_that_disagree_are_refused_and_http2_authority_wins() {
    let (upstream, watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "");
    let addr = g.addr("web");
    rt().block_on(async {
        for (request, why) in [
            (
                "GET / HTTP/1.1\r\nHost: portal.test\r\nHost: evil.test\r\n\r\n",
                "more than one Host",
            ),
            (
                "GET https://evil.test/ HTTP/1.1\r\nHost: portal.test\r\n\r\n",
                "Host does not match",
            ),
        ] {
            let answer = raw_http1(addr, request).await;
            assert!(
                answer.starts_with("HTTP/1.1 400") && answer.contains(why),
                "{request:?}: {answer}"
            );
        }
        assert_eq!(watch.now().requests, 0, "none reached the upstream");
        let fine = raw_http1(
            addr,
            "GET https://portal.test/ HTTP/1.1\r\nHost: portal.test\r\n\r\n",
        )
        .await;
        assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");

        let config = inspecting_client_config(&[b"h2"]);
        let (tls, _) = connect_with(config, addr, Some("portal.test"))
            .await
            .expect("handshake");
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2");
        tokio::spawn(conn);
        let req = http::Request::get("https://portal.test/")
            .header("host", "evil.test")
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = send.send_request(req).await.expect("response");
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body")
            .to_bytes();
        let seen = String::from_utf8_lossy(&body);
        assert!(
            seen.contains("host: portal.test\n") && !seen.contains("evil.test"),
            ":authority is the host the upstream sees: {seen}"
        );
        let req = http::Request::get("https://user@portal.test/")
            .body(Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = send.send_request(req).await.expect("response");
        assert_eq!(resp.status(), 400, "userinfo in :authority");
    });
}

#[test]
fn a_malformed_request_body_is_the_clients_error_not_the_upstreams() {
    let (upstream, _watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "");
    let answer = rt().block_on(raw_http1(
        g.addr("web"),
        "POST /count HTTP/1.1\r\nHost: portal.test\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\nZZ\r\nbad chunk size\r\n",
    ));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        g.metric(r#"gatehouse_client_errors_total{kind="request_body",listener="web"}"#),
        Some(1.0)
    );
    assert_eq!(
        g.metric(r#"gatehouse_upstream_errors_total{kind="protocol",listener="web"}"#),
        Some(0.0),
        "not blamed on the upstream"
    );
}

#[test]
fn floods_of_bad_handshakes_and_http2_resets_log_a_few_lines_and_count_every_one() {
    let (upstream, _watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "");
    let addr = g.addr("web");
    rt().block_on(async {
        for _ in 0..20 {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            tcp.write_all(b"GET / HTTP/1.1\r\n\r\n")
                .await
                .expect("garbage");
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(STEP_TIMEOUT, tcp.read_to_end(&mut sink)).await;
        }
        for _ in 0..20 {
            rapid_reset(addr).await;
        }
    });
    let series = r#"gatehouse_tls_handshakes_total{listener="web",result="protocol_error"}"#;
    assert_eq!(g.metric(series), Some(20.0));
    let resets = r#"gatehouse_client_errors_total{kind="protocol",listener="web"}"#;
    let counted = g.wait_for_metric(resets, |v| v == 20.0, WAIT);
    assert!(counted.is_some(), "{:?}", g.metric(resets));
    assert!(g.log_count("TLS handshake failed") <= 5, "{}", g.log_text());
    assert!(
        g.log_count("client connection closed") <= 5,
        "{}",
        g.log_text()
    );
    assert_eq!(
        g.log_count("reached limit"),
        0,
        "h2's own line per connection"
    );
}

#[test]
fn health_checks_that_connect_and_close_are_counted_not_warned_of() {
    let (upstream, _watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "");
    let addr = g.addr("web");
    for _ in 0..10 {
        drop(std::net::TcpStream::connect(addr).expect("connect"));
    }
    let series = r#"gatehouse_tls_handshakes_total{listener="web",result="closed"}"#;
    let counted = g.wait_for_metric(series, |v| v == 10.0, WAIT);
    assert!(counted.is_some(), "{:?}", g.metric(series));
    assert_eq!(
        g.log_count("TLS handshake failed"),
        0,
        "a client that goes away is routine, not a warning: {}",
        g.log_text()
    );
}

/// One HTTP/2 connection that opens and resets streams until the server sends GOAWAY:
/// the client preface, then HEADERS and RST_STREAM for one new stream after another, all
/// in one write, as an attacker sends them. The server reads each reset before it could
/// accept its stream, whatever the machine's load. (The h2 crate's client flushes a
/// stream's HEADERS and its reset whenever its connection task runs: on a busy or idle
/// server the streams could be accepted before their reset, and no flood seen.)
async fn rapid_reset(addr: std::net::SocketAddr) {
    let config = inspecting_client_config(&[b"h2"]);
    let (mut tls, _) = connect_with(config, addr, Some("portal.test"))
        .await
        .expect("handshake");
    // HPACK: :method GET, :scheme https, :path / from the static table; :authority
    // (static name 1) with a literal value, not indexed.
    let mut block = vec![0x82, 0x87, 0x84, 0x01, 11];
    block.extend_from_slice(b"portal.test");
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    flood.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS, empty
    for stream in (1..2000u32).step_by(2) {
        flood.extend(h2_frame(0x1, 0x4, stream, &block)); // HEADERS, END_HEADERS
        flood.extend(h2_frame(0x3, 0, stream, &8u32.to_be_bytes())); // RST_STREAM, CANCEL
    }
    // The server may close before the end of it.
    let _ = tls.write_all(&flood).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut answer)).await;
}

/// An HTTP/2 frame (RFC 9113 §4.1): 24-bit length, type, flags, stream, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a short payload");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// `curl` against the admin API with extra arguments: the status code.
fn admin_status(g: &Gatehouse, path: &str, extra: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(extra)
        .arg(g.admin_url(path))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_admin_api_refuses_other_origins_and_rebound_host_names_and_bounds_slow_clients() {
    let (upstream, _watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "");
    let reloads = r#"gatehouse_certificate_reloads_total{result="success"}"#;
    let before = g.metric(reloads);
    // What a page on another site can make the browser send: a "simple" cross-site POST.
    let cross_site = [
        "-X",
        "POST",
        "-H",
        "Origin: http://evil.example",
        "-H",
        "Content-Type: text/plain",
    ];
    assert_eq!(admin_status(&g, "/reload", &cross_site), "403");
    assert_eq!(
        admin_status(
            &g,
            "/reload",
            &["-X", "POST", "-H", "Sec-Fetch-Site: cross-site"]
        ),
        "403"
    );
    // DNS rebinding: evil.example resolving to 127.0.0.1.
    assert_eq!(
        admin_status(&g, "/certs", &["-H", "Host: evil.example"]),
        "403"
    );
    assert_eq!(g.metric(reloads), before, "no reload happened");
    let admin = g.admin_url("");
    let own = format!("Origin: {admin}");
    assert_eq!(
        admin_status(&g, "/reload", &["-X", "POST", "-H", &own]),
        "200"
    );
    assert_eq!(admin_status(&g, "/certs", &[]), "200");

    // A client that never finishes its request head is closed.
    let addr = admin.trim_start_matches("http://");
    rt().block_on(async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .expect("half a head");
        let mut sink = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "closed at the admin header timeout");
    });
}

#[test]
fn out_of_descriptors_accept_backs_off_quietly_open_connections_work_and_it_recovers() {
    let env = portal_env();
    let (upstream, _watch) = http_upstream_watched("portal");
    let listener = ListenerToml::http(upstream).certificates(&["portal"]);
    let config = env.config(&listener.to_toml());
    let config = config.display().to_string();
    let g = Gatehouse::start_wrapped(
        &["prlimit", "--nofile=100:100", "--"],
        &["run", "--config", &config],
    );
    assert!(
        g.log_text().contains("need up to"),
        "max_connections that cannot fit are warned of at start:\n{}",
        g.log_text()
    );
    let addr = g.addr("web");
    rt().block_on(async {
        // A keep-alive connection, its upstream connection pooled, before the flood.
        let (mut send, _, _) = support::clients::portal_keep_alive(addr).await;
        let ok = support::clients::get_portal(&mut send)
            .await
            .expect("request");
        assert_eq!(ok.status(), 200);
        drop(ok);
        let mut held = Vec::new();
        for _ in 0..200 {
            if let Ok(tcp) = tokio::net::TcpStream::connect(addr).await {
                held.push(tcp);
            }
        }
        assert!(
            g.wait_for_log(|l| l.contains("accept failed"), WAIT)
                .is_some(),
            "{}",
            g.log_text()
        );
        let still = support::clients::get_portal(&mut send)
            .await
            .expect("the open connection keeps working");
        assert_eq!(still.status(), 200);
        drop(still);
        drop(held);
        // Descriptors come back as the held connections close: new clients get in.
        let mut recovered = false;
        for _ in 0..40 {
            if get_on_new_connection(addr).await {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(recovered, "new clients are served again");
    });
    let failed = g.metric(r#"gatehouse_accept_errors_total{kind="open_files",listener="web"}"#);
    assert!(failed.is_some_and(|n| n >= 1.0), "{failed:?}");
    // Accept retries every 100 ms on each worker: at most a line a second is logged.
    let lines = g.log_count("accept failed");
    assert!(lines <= 30, "{lines} lines:\n{}", g.log_text());
}

#[test]
fn ten_thousand_handshakes_abandoned_halfway_leave_nothing_behind() {
    let (upstream, _watch) = http_upstream_watched("portal");
    let (_env, g) = serve_portal(upstream, "");
    let addr = g.addr("web");
    rt().block_on(async {
        // The first bytes of a TLS record carrying a ClientHello, then gone.
        for _ in 0..10_000 {
            if let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await {
                let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
            }
        }
    });
    let active = r#"gatehouse_connections_active{listener="web"}"#;
    let drained = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        g.metric(active) == Some(0.0)
    });
    assert!(
        drained,
        "every abandoned connection is closed: {:?}",
        g.metric(active)
    );
    let answer = rt().block_on(raw_http1(
        addr,
        "GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n",
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
