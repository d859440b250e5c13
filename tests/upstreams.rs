//! What clients see when upstreams fail, stall, close or are slow, and how upstream
//! connections are kept, reused and closed: the real binary against test upstreams.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse_tests::upstream::{
    http_upstream, http_upstream_closing_idle_after, http_upstream_watched, refused_addr,
};
use support::deploy::{Env, ListenerToml, WAIT, http_listener, portal_and_engine, text};
use support::process::Gatehouse;

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
