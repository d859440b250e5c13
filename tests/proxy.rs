//! `gatehouse run`, `check` and `demo` driven as a user would: the real binary, real
//! clients (curl, openssl s_client, rustls, a WebSocket client), real upstreams, all on
//! 127.0.0.1.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gatehouse_tests::upstream::{
    http_upstream, http_upstream_closing_idle_after, http_upstream_watched, refused_addr, rt,
    tcp_echo_after_eof,
};
use gatehouse_tests::{
    LeafSpec, STEP_TIMEOUT, connect, connect_with, inspecting_client_config, openssl_fixtures,
    serial_of, temp_dir, write,
};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::deploy::{
    Env, ListenerToml, WAIT, curl_with_root, http_listener, portal_and_engine, text,
};
use support::process::{Gatehouse, gatehouse_bin};
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
fn openssl_s_client_sees_the_full_chain_and_verifies_it() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "engine.test",
            "-showcerts",
            // AES-256 first, as OpenSSL lists it by default.
            "-ciphersuites",
            "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
            "-CAfile",
        ])
        .arg(env.path().join("root.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl (is it installed?)");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("openssl output");
    let out = text(&out);
    assert!(
        out.contains("CN = engine.test") || out.contains("CN=engine.test"),
        "{out}"
    );
    assert!(
        out.contains("Gatehouse rcgen Intermediate"),
        "the intermediate is served: {out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(
        out.contains("TLS_AES_128_GCM_SHA256"),
        "the server prefers AES-128-GCM (SHA-256 key schedule) over the client's order: {out}"
    );
}

#[test]
fn rsa_certificates_sign_handshakes_with_sha256_as_openssl_servers_do() {
    // An RSA leaf made by the openssl CLI, and an ECDSA one from rcgen.
    let mut env = Env::new();
    let fx = openssl_fixtures();
    env.certificate_block(
        "portal",
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nchain = \"{}\"",
            fx.join("leaf-rsa2048.crt").display(),
            fx.join("leaf-rsa2048.key").display(),
            fx.join("inter.crt").display(),
        ),
    );
    env.certificate("engine", &["engine.test"]);
    let g = Gatehouse::start(&env.config(&http_listener(http_upstream("portal"), "")));
    let addr = g.addr("web").to_string();
    for (name, version, want) in [
        ("leaf.test", "-tls1_3", "Peer signature type: RSA-PSS"),
        ("leaf.test", "-tls1_2", "Peer signature type: RSA-PSS"),
        ("engine.test", "-tls1_3", "Peer signature type: ECDSA"),
    ] {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", name, version])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (is it installed?)");
        let out = text(&out);
        // OpenSSL 3 offers SHA-512 too; the key, not the hash, bounds RSA's strength, and
        // SHA-256 is the cheaper to sign (nginx and HAProxy pick it as well).
        assert!(
            out.contains(want) && out.contains("Peer signing digest: SHA256"),
            "{name} {version}: signed with {want}, SHA-256:\n{out}"
        );
    }
}

#[test]
fn websocket_echo_works_end_to_end() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    drop(env);
    rt().block_on(async {
        let (tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
        let url = format!("wss://portal.test:{}/chat", addr.port());
        let (mut ws, resp) =
            tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::client_async(url, tls))
                .await
                .expect("upgrade in time")
                .expect("websocket upgrade through the proxy");
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
fn unreachable_upstream_is_502_slow_upstream_is_504_and_the_listener_keeps_serving() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    env.certificate("engine", &["engine.test"]);
    let portal = http_upstream("portal");
    let dead = refused_addr();
    let config = env.config(&format!(
        "{}\n[[listener.route]]\nserver_name = \"engine.test\"\nupstream = \"http://{dead}\"\n",
        http_listener(portal, "upstream_timeout = 1")
    ));
    let g = Gatehouse::start(&config);
    let addr = g.addr("web");
    let status = |host: &str, path: &str| {
        let out = env.curl(addr, host, path, &["-o", "/dev/null", "-w", "%{http_code}"]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(status("engine.test", "/"), "502", "refused upstream → 502");
    assert_eq!(
        status("portal.test", "/hang"),
        "504",
        "upstream too slow → 504"
    );
    let body = text(&env.curl(addr, "engine.test", "/", &[]));
    assert!(body.contains("502 Bad Gateway"), "short plain body: {body}");
    assert_eq!(
        status("portal.test", "/"),
        "200",
        "the listener keeps serving"
    );
    assert!(
        g.wait_for_log(|l| l.contains("502"), WAIT).is_some(),
        "{}",
        g.log_text()
    );
    assert!(
        g.wait_for_log(|l| l.contains("504"), WAIT).is_some(),
        "{}",
        g.log_text()
    );
}

#[test]
fn upstream_timeout_applies_afresh_to_every_request_of_a_keep_alive_connection() {
    // The requests start 1.5 s apart (curl's --rate), so the first request's deadline
    // passes while the connection waits: the second request's 504 must still come a full
    // `upstream_timeout` after it was sent.
    let (env, g) = portal_and_engine("upstream_timeout = 1");
    let addr = g.addr("web");
    let url = |path: &str| format!("https://portal.test:{}{path}", addr.port());
    for protocol in ["--http1.1", "--http2"] {
        let (first, second, third) = (url("/slow/700"), url("/hang"), url("/"));
        let out = env.curl(
            addr,
            "portal.test",
            "/hang",
            &[
                protocol,
                "--rate",
                "40/m",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{num_connects} %{time_total}\n",
                &first,
                &second,
                &third,
            ],
        );
        let lines: Vec<(String, String, f64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some((
                    f.next()?.to_owned(),
                    f.next()?.to_owned(),
                    f.next()?.parse().ok()?,
                ))
            })
            .collect();
        let codes: Vec<&str> = lines.iter().map(|(c, _, _)| c.as_str()).collect();
        let connects: Vec<&str> = lines.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(
            codes,
            ["200", "504", "200", "504"],
            "{protocol}: {}",
            text(&out)
        );
        assert_eq!(
            connects,
            ["1", "0", "0", "0"],
            "{protocol}: one connection for all four"
        );
        for (i, (_, _, took)) in lines.iter().enumerate().filter(|(_, l)| l.0 == "504") {
            assert!(
                (0.9..10.0).contains(took),
                "{protocol}: request {i} got its 504 after {took} s, not after upstream_timeout (1 s)"
            );
        }
    }
}

/// The `peer=PORT` line of the echo upstream: which upstream connection served a request.
fn upstream_peer(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("peer="))
        .unwrap_or_else(|| panic!("the upstream names its connection: {body}"))
        .to_owned()
}

#[test]
fn upstream_connections_are_kept_alive_and_reused_across_clients() {
    const REQUESTS: usize = 8;
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let (upstream, watch) = http_upstream_watched("portal");
    // One worker: its one idle connection serves every request, one after another.
    let listener = ListenerToml::http(upstream).certificates(&["portal"]);
    let g = Gatehouse::start(&env.config_with("workers = 1", &listener.to_toml()));
    let addr = g.addr("web");
    let mut peers = std::collections::HashSet::new();
    for i in 0..REQUESTS {
        // Each curl is a new client connection; HTTP/1.1 and HTTP/2 clients alike.
        let flag = if i % 2 == 0 { "--http1.1" } else { "--http2" };
        let out = env.curl(addr, "portal.test", "/", &[flag]);
        assert!(out.status.success(), "{}", text(&out));
        peers.insert(upstream_peer(&text(&out)));
    }
    assert_eq!(
        peers.len(),
        1,
        "{REQUESTS} requests one after another share one upstream connection"
    );
    let seen = watch.now();
    assert_eq!((seen.connections, seen.requests), (1, REQUESTS), "{seen:?}");
}

#[test]
fn idle_upstream_connections_are_closed_after_upstream_idle_timeout() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let (upstream, watch) = http_upstream_watched("portal");
    let listener = ListenerToml::http(upstream)
        .certificates(&["portal"])
        .set("upstream_idle_timeout = \"300ms\"");
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let out = env.curl(g.addr("web"), "portal.test", "/", &[]);
    assert!(text(&out).contains("upstream=portal"), "{}", text(&out));
    // No further request comes: the pool closes the idle connection on its own.
    let seen = watch
        .wait(|s| s.closed == 1, WAIT)
        .unwrap_or_else(|| panic!("the idle upstream connection is closed: {:?}", watch.now()));
    assert_eq!((seen.connections, seen.requests), (1, 1));
}

#[test]
fn an_upstream_closing_idle_connections_is_reconnected_without_errors() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    env.certificate("engine", &["engine.test"]);
    let upstream = http_upstream_closing_idle_after("portal", Duration::from_millis(200));
    let g = Gatehouse::start(&env.config(&http_listener(upstream, "")));
    let addr = g.addr("web");
    let mut peers = std::collections::HashSet::new();
    for _ in 0..3 {
        let out = env.curl(addr, "portal.test", "/", &[]);
        let body = text(&out);
        assert!(
            out.status.success() && body.contains("upstream=portal"),
            "a closed idle connection is never used: {body}"
        );
        peers.insert(upstream_peer(&body));
        // Longer than the upstream keeps an idle connection.
        std::thread::sleep(Duration::from_millis(600));
    }
    assert_eq!(
        peers.len(),
        3,
        "each request found its idle connection closed and opened a new one"
    );
}

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

type KeepAlive = hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>;

/// A keep-alive HTTP/1.1 connection to portal.test, the certificate chain it was served,
/// and the task driving the connection, which ends when the connection closes.
async fn portal_keep_alive(
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
fn get_portal(
    send: &mut KeepAlive,
) -> impl Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>> + use<> {
    let req = http::Request::get("/")
        .header("host", "portal.test")
        .body(Empty::new())
        .expect("req");
    send.send_request(req)
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
fn sighup_rotates_the_certificate_while_keep_alive_connections_keep_working() {
    let (mut env, g) = portal_and_engine("");
    let addr = g.addr("web");
    let old_serial = env.serials["portal"].clone();
    rt().block_on(async {
        let (mut send, chain, _) = portal_keep_alive(addr).await;
        assert_eq!(serial_of(&chain[0]), old_serial);
        let resp = get_portal(&mut send).await.expect("first request");
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await;

        let new_serial = env.issue("portal", &["portal.test"]);
        let before = g.log_lines().len();
        g.signal("HUP");
        let line = g.wait_for_log(|l| l.contains("certificate \"portal\": updated"), WAIT);
        assert!(
            line.is_some(),
            "reload must log the update:\n{}",
            g.log_since(before).join("\n")
        );

        let (_, chain) = connect(addr, Some("portal.test"))
            .await
            .expect("handshake after reload");
        assert_eq!(
            serial_of(&chain[0]),
            new_serial,
            "the next handshake gets the new certificate"
        );
        let resp = get_portal(&mut send)
            .await
            .expect("the open keep-alive connection still works");
        assert_eq!(resp.status(), 200);
    });
}

#[test]
fn a_broken_certificate_on_sighup_keeps_the_old_one_serving() {
    let (env, mut g) = portal_and_engine("");
    let addr = g.addr("web");
    write(
        env.path(),
        "portal.crt",
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
    );
    g.signal("HUP");
    let line = g.wait_for_log(
        |l| l.contains("certificate \"portal\": kept previous"),
        WAIT,
    );
    assert!(line.is_some(), "{}", g.log_text());
    assert!(
        line.unwrap().contains("portal.crt"),
        "the error names the file"
    );
    let (_, chain) = rt()
        .block_on(connect(addr, Some("portal.test")))
        .expect("handshake");
    assert_eq!(
        serial_of(&chain[0]),
        env.serials["portal"],
        "the old certificate keeps serving"
    );
    assert!(
        g.wait_exit(Duration::from_millis(200)).is_none(),
        "the process stays up"
    );
    // A config that no longer parses changes nothing either.
    write(env.path(), "gatehouse.toml", "this is [not toml");
    g.signal("HUP");
    assert!(
        g.wait_for_log(|l| l.contains("reload refused, nothing changed"), WAIT)
            .is_some(),
        "{}",
        g.log_text()
    );
    let out = env.curl(addr, "portal.test", "/", &[]);
    assert!(text(&out).contains("upstream=portal"));
}

#[test]
fn sigterm_drains_in_flight_requests_and_refuses_new_connections() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let (upstream, watch) = http_upstream_watched("portal");
    let listener = ListenerToml::http(upstream).certificates(&["portal"]);
    let mut g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");
    let root = env.path().join("root.pem");
    let slow =
        std::thread::spawn(move || curl_with_root(&root, addr, "portal.test", "/slow/1500", &[]));
    assert!(
        watch.wait(|s| s.requests == 1, WAIT).is_some(),
        "the slow request reaches the upstream"
    );
    g.signal("TERM");
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "new connections must be refused after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = slow.join().expect("slow request thread");
    assert!(
        text(&out).contains("slow=1500"),
        "the in-flight request completes: {}",
        text(&out)
    );
    let status = g.wait_exit(WAIT).expect("exit after drain");
    assert!(status.success(), "exit 0 after a clean drain: {status:?}");
}

#[test]
fn check_exits_0_on_a_good_config_and_1_with_every_error_on_a_broken_one() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let dead = refused_addr();
    let config = env.config(
        &ListenerToml::http(dead.addr())
            .certificates(&["portal"])
            .to_toml(),
    );
    let out = Command::new(gatehouse_bin())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("portal") && report.contains("portal.test") && report.contains("DAYS LEFT"),
        "{report}"
    );

    let expired = env
        .pki
        .inter
        .leaf_with(LeafSpec::new(&["portal.test"]).validity(-30, -1));
    env.pki.write_leaf(env.path(), "portal", &expired);
    let broken = env.config_file(
        "broken.toml",
        "",
        &ListenerToml::http(dead.addr())
            .certificates(&["portal"])
            .upstream(&format!("ftp://{}", dead.addr()))
            .to_toml(),
    );
    let out = Command::new(gatehouse_bin())
        .args(["check", "--config"])
        .arg(&broken)
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("ftp"),
        "config problems are reported: {}",
        text(&out)
    );
    let out = Command::new(gatehouse_bin())
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("expired"),
        "certificate problems are reported: {}",
        text(&out)
    );
}

#[test]
fn demo_serves_three_components_and_stops_on_ctrl_c() {
    let dir = temp_dir();
    let mut g = Gatehouse::start_args(&[
        "demo",
        "--bind",
        "127.0.0.1:0",
        "--dir",
        &dir.path().display().to_string(),
    ]);
    let curls: Vec<String> = g
        .log_lines()
        .into_iter()
        .filter(|l| l.trim_start().starts_with("curl "))
        .collect();
    assert_eq!(curls.len(), 3, "{}", g.log_text());
    for (line, component) in curls.iter().zip(["portal", "engine", "console"]) {
        let out = Command::new("bash")
            .args(["-c", &format!("{} -sS --max-time 10", line.trim())])
            .output()
            .expect("curl");
        assert!(
            text(&out).contains(&format!("Hello from the {component}")),
            "{line}: {}",
            text(&out)
        );
    }
    g.signal("INT");
    let status = g.wait_exit(WAIT).expect("demo exits on Ctrl-C");
    assert!(status.success());
    let _ = std::io::stdout().flush();
}

/// An HTTP/2 connection to portal.test (ALPN checked); its connection task runs on `rt()`
/// and ends when the connection closes.
async fn portal_h2(
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
fn get_portal_h2(
    send: &hyper::client::conn::http2::SendRequest<Empty<bytes::Bytes>>,
    path: &str,
) -> impl Future<Output = hyper::Result<String>> + use<> {
    get_h2(send, &format!("https://portal.test{path}"))
}

/// `GET url` on an HTTP/2 connection (`url`'s authority is the request's `:authority`):
/// the body as text.
fn get_h2(
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
async fn body_of(task: tokio::task::JoinHandle<hyper::Result<String>>, what: &str) -> String {
    tokio::time::timeout(STEP_TIMEOUT, task)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in {STEP_TIMEOUT:?}"))
        .expect("client task")
        .unwrap_or_else(|e| panic!("{what}: {e}"))
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

#[test]
fn http2_streams_of_one_connection_do_not_wait_for_a_slow_one_which_sigterm_lets_finish() {
    let (_env, mut g) = portal_and_engine("");
    let addr = g.addr("web");
    rt().block_on(async {
        let (send, _conn) = portal_h2(addr).await;
        let slow = tokio::spawn(get_portal_h2(&send, "/slow/3000"));
        let quick: Vec<_> = (0..20)
            .map(|i| tokio::spawn(get_portal_h2(&send, &format!("/quick/{i}"))))
            .collect();
        for (i, q) in quick.into_iter().enumerate() {
            let body = body_of(q, "quick stream").await;
            assert!(
                body.contains(&format!("path=/quick/{i}")),
                "each stream gets its own answer: {body}"
            );
        }
        assert!(
            !slow.is_finished(),
            "the quick streams were answered while the slow one still waited for its upstream"
        );
        g.signal("TERM");
        let body = body_of(slow, "slow stream").await;
        assert!(
            body.contains("slow=3000"),
            "an HTTP/2 stream in flight at SIGTERM completes: {body}"
        );
    });
    let status = g.wait_exit(WAIT).expect("exit after drain");
    assert!(status.success(), "exit 0 after a clean drain: {status:?}");
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_and_stops_accepting_at_once() {
    // Only requests in flight are waited for (up to shutdown_timeout, 30 s here): an idle
    // HTTP/1.1 connection is closed and an idle HTTP/2 one gets GOAWAY at once, and the
    // listening socket closes, so the process exits while both clients still hold theirs.
    let (_env, mut g) = portal_and_engine("");
    let addr = g.addr("web");
    rt().block_on(async {
        let (mut h1, _, h1_conn) = portal_keep_alive(addr).await;
        let resp = get_portal(&mut h1).await.expect("HTTP/1.1 request");
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await;
        let (h2, h2_conn) = portal_h2(addr).await;
        let body = get_portal_h2(&h2, "/").await.expect("HTTP/2 request");
        assert!(body.contains("upstream=portal"), "{body}");

        let signalled = Instant::now();
        g.signal("TERM");
        for (what, conn) in [("HTTP/1.1", h1_conn), ("HTTP/2", h2_conn)] {
            tokio::time::timeout(Duration::from_secs(5), conn)
                .await
                .unwrap_or_else(|_| panic!("the idle {what} connection is closed at SIGTERM"))
                .expect("client connection task")
                .unwrap_or_else(|e| panic!("the idle {what} connection ends cleanly: {e}"));
        }
        // Both clients are still alive; only the server could have ended their connections.
        drop((h1, h2));
        let refused = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_ok() {
            assert!(
                Instant::now() < refused,
                "new connections are refused at once"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "well before shutdown_timeout"
        );
    });
    let status = g.wait_exit(WAIT).expect("exit after drain");
    assert!(status.success(), "exit 0 after a clean drain: {status:?}");
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
fn min_tls_version_1_3_refuses_tls_1_2_clients() {
    let (env, g) = portal_and_engine("min_tls_version = \"1.3\"");
    let addr = g.addr("web");
    let out = env.curl(addr, "portal.test", "/", &["--tls-max", "1.2"]);
    assert!(
        !out.status.success(),
        "TLS 1.2 must be refused: {}",
        text(&out)
    );
    let out = env.curl(addr, "portal.test", "/", &["--tlsv1.3"]);
    assert!(text(&out).contains("upstream=portal"), "{}", text(&out));
    let (env, g) = portal_and_engine("");
    let out = env.curl(g.addr("web"), "portal.test", "/", &["--tls-max", "1.2"]);
    assert!(
        text(&out).contains("upstream=portal"),
        "TLS 1.2 works by default: {}",
        text(&out)
    );
}

#[test]
fn session_resumption_is_on_by_default_and_can_be_turned_off() {
    for (extra, expect_resumed) in [("", true), ("session_resumption = false", false)] {
        let (_env, g) = portal_and_engine(extra);
        let addr = g.addr("web");
        let kinds = rt().block_on(async {
            let config = inspecting_client_config(&[]);
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let (mut tls, _) = connect_with(config.clone(), addr, Some("portal.test"))
                    .await
                    .expect("handshake");
                // TLS 1.3 tickets arrive after the handshake: exchange a request to receive them.
                tls.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n")
                    .await
                    .expect("write");
                let mut buf = Vec::new();
                let _ = tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut buf)).await;
                kinds.push(tls.get_ref().1.handshake_kind());
            }
            kinds
        });
        let resumed = kinds[1] == Some(rustls::HandshakeKind::Resumed);
        assert_eq!(
            resumed, expect_resumed,
            "{extra:?}: handshake kinds {kinds:?}"
        );
    }
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

#[test]
fn an_upload_slower_than_upstream_timeout_still_completes() {
    let (env, g) = portal_and_engine("upstream_timeout = 1");
    let addr = g.addr("web");
    let script = format!(
        "head -c 300000 /dev/zero | curl -sS --max-time 30 --limit-rate 100K --cacert {} --resolve portal.test:{port}:127.0.0.1 -T - https://portal.test:{port}/count",
        env.path().join("root.pem").display(),
        port = addr.port()
    );
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "the upload was slow"
    );
    assert!(
        text(&out).contains("count=300000"),
        "the timeout runs from the last body bytes, not the start: {}",
        text(&out)
    );
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
        let (tls, _) = connect(addr, Some("portal.test")).await.expect("handshake");
        let url = format!("wss://portal.test:{}/chat", addr.port());
        let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("upgrade");
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

#[test]
fn a_reload_that_drops_a_certificate_a_running_listener_needs_keeps_it() {
    let (mut env, g) = portal_and_engine("");
    let addr = g.addr("web");
    // A new file that renames the listener: the running one keeps serving until restart,
    // with its certificates.
    env.remove_certificate("portal");
    env.config(
        &ListenerToml::http(http_upstream("portal"))
            .name("web2")
            .certificates(&["engine"])
            .to_toml(),
    );
    g.signal("HUP");
    assert!(
        g.wait_for_log(|l| l.contains("serves it until restart"), WAIT)
            .is_some(),
        "{}",
        g.log_text()
    );
    let (_, chain) = rt()
        .block_on(connect(addr, Some("portal.test")))
        .expect("still served");
    assert_eq!(serial_of(&chain[0]), env.serials["portal"]);
}
