//! The process as an operator drives it: SIGHUP reloads, SIGTERM drains, `demo` and
//! reloads that change the config: the real binary, real clients. (`check`: `check.rs`.)

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_tests::upstream::{http_upstream, http_upstream_watched, rt};
use gatehouse_tests::{connect, serial_of, temp_dir, write};
use http_body_util::BodyExt;
use support::clients::*;
use support::deploy::{Env, ListenerToml, WAIT, curl_with_root, portal_and_engine, text};
use support::process::Gatehouse;

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
fn clients_that_connected_and_said_nothing_do_not_hold_the_drain() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    // Timeouts far longer than the wait below: only the drain's grace can end these.
    let listener = ListenerToml::http(http_upstream("portal"))
        .certificates(&["portal"])
        .set("handshake_timeout = \"60s\"\nidle_timeout = \"60s\"");
    let mut g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");
    // One before its handshake (a TCP health check), one after it with no request.
    let silent_tcp = TcpStream::connect(addr).expect("connect");
    let silent_tls = rt()
        .block_on(connect(addr, Some("portal.test")))
        .expect("handshake");
    let open = r#"gatehouse_connections_active{listener="web"}"#;
    let both = g.wait_for_metric(open, |v| v == 2.0, WAIT);
    assert!(both.is_some(), "both accepted: {:?}", g.metric(open));
    g.signal("TERM");
    let status = g.wait_exit(WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "silent connections get a short grace, not their whole timeout: {}",
        g.log_text()
    );
    drop((silent_tcp, silent_tls));
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
