//! Gatehouse under systemd: the notification protocol of `Type=notify`, played by the
//! test with a Unix datagram socket as systemd does (`NOTIFY_SOCKET`), and socket
//! activation, with the listening socket held by the test as systemd holds it.

#[path = "support/mod.rs"]
mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gatehouse_tests::STEP_TIMEOUT;
use gatehouse_tests::upstream::{http_upstream, rt};
use support::chores::s;
use support::deploy::{Env, ListenerToml, WAIT};
use support::probes::get_on_new_connection;
use support::process::Gatehouse;

/// The next notification Gatehouse sent, as text.
fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn systemd_hears_ready_reloading_and_stopping_in_order() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let config = env.config(&listener.to_toml());
    let path = env.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("the notify socket");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut g = Gatehouse::start_env(
        &["run", "--config", &s(&config)],
        &[("NOTIFY_SOCKET", &s(&path))],
    );
    let ready = next(&socket);
    assert!(
        ready.contains("READY=1")
            && ready.contains("STATUS=serving 1 certificate(s); next expiry: portal in"),
        "ready once listening, with the certificates' state: {ready:?}"
    );

    g.signal("HUP");
    let reloading = next(&socket);
    assert!(
        reloading.contains("RELOADING=1") && reloading.contains("MONOTONIC_USEC="),
        "{reloading:?}"
    );
    assert!(
        next(&socket).contains("READY=1"),
        "ready again after the reload"
    );

    let posted = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST", &g.admin_url("/reload")])
        .output()
        .expect("curl");
    assert!(posted.status.success());
    assert!(
        next(&socket).contains("RELOADING=1"),
        "the admin API's reload too"
    );
    assert!(next(&socket).contains("READY=1"));

    g.signal("TERM");
    let stopping = next(&socket);
    assert!(stopping.contains("STOPPING=1"), "{stopping:?}");
    assert!(g.wait_exit(WAIT).is_some_and(|s| s.success()));
}

/// What the load saw across the restart.
#[derive(Debug, Default)]
struct Seen {
    answered: u64,
    /// Connections the kernel refused or that did not complete: what a socket nobody
    /// holds during a restart causes.
    refused: u64,
    /// Connections made whose request got no answer.
    unanswered: u64,
}

/// A new connection per request, until told to stop.
async fn new_connections(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    while !stop.load(Ordering::Relaxed) {
        // Connects and closes at once (the stream is a temporary of the statement).
        let connected = matches!(
            tokio::time::timeout(STEP_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
            Ok(Ok(_))
        );
        if !connected {
            seen.refused += 1;
            continue;
        }
        if get_on_new_connection(addr).await {
            seen.answered += 1;
        } else {
            seen.unanswered += 1;
        }
    }
    seen
}

/// A deployment on a listening socket held as systemd holds it for gatehouse.socket.
struct Activated {
    _env: Env,
    held: std::net::TcpListener,
    addr: std::net::SocketAddr,
    config: String,
}

impl Activated {
    fn new() -> Self {
        let mut env = Env::new();
        env.certificate("portal", &["portal.test"]);
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let listener = ListenerToml::http(http_upstream("portal"))
            .certificates(&["portal"])
            .bind(addr);
        let config = s(&env.config(&listener.to_toml()));
        Self {
            _env: env,
            held,
            addr,
            config,
        }
    }

    /// Gatehouse started on the held socket.
    fn start(&self) -> Gatehouse {
        let g = Gatehouse::start_activated(&self.held, &["run", "--config", &self.config]);
        assert!(
            g.log_text()
                .contains("accepting on the socket systemd passed")
        );
        g
    }

    /// What `systemctl restart` does: stop (the drain), then start on the same socket.
    fn restart(&self, mut running: Gatehouse) -> (Gatehouse, Gatehouse) {
        running.signal("TERM");
        assert!(
            running.wait_exit(WAIT).is_some(),
            "the first one drains and exits: {}",
            running.log_text()
        );
        (running, self.start())
    }
}

#[test]
fn a_restart_on_the_socket_systemd_holds_refuses_no_connection() {
    let activated = Activated::new();
    let addr = activated.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt().spawn(new_connections(addr, stop.clone()));
    let (first, _second) = activated.restart(activated.start());
    // Load on the second for a moment, then stop.
    let answered_after = rt().block_on(async {
        let mut ok = 0;
        for _ in 0..20 {
            ok += u64::from(get_on_new_connection(addr).await);
        }
        ok
    });
    stop.store(true, Ordering::Relaxed);
    let seen = rt().block_on(load).expect("the load task");
    assert_eq!(answered_after, 20, "the second instance serves");
    assert!(seen.answered > 0, "{seen:?}");
    assert_eq!(
        seen.refused, 0,
        "no connection is refused across the restart: {seen:?}"
    );
    assert_eq!(
        seen.unanswered,
        0,
        "a connection the old process accepted as it began to drain is answered: {seen:?}\n{}",
        first.log_text()
    );
}

/// The value of `key` in a systemd unit file.
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// The units of `deploy/`, in a directory of their own, run from the binary under test.
fn deploy_units() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for name in ["gatehouse.service", "gatehouse.socket"] {
        let unit = std::fs::read_to_string(deploy.join(name)).expect("the unit");
        let unit = unit.replace(
            "/usr/local/bin/gatehouse",
            &s(&support::process::gatehouse_bin()),
        );
        std::fs::write(dir.path().join(name), unit).expect("write");
    }
    dir
}

#[test]
fn the_shipped_units_pass_systemd_analyze() {
    let units = deploy_units();
    let analyze = |args: &[&str]| {
        support::tools::run_tool(
            std::process::Command::new("systemd-analyze")
                .args(args)
                .current_dir(units.path()),
            "apt-get install systemd",
        )
    };
    let Some(verify) = analyze(&[
        "verify",
        "--man=no",
        "./gatehouse.service",
        "./gatehouse.socket",
    ]) else {
        return;
    };
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // docs/operations.md reports the score: 1.5 ("OK") of 10 on systemd 252.
    let security = analyze(&[
        "security",
        "--offline=yes",
        "--threshold=20",
        "./gatehouse.service",
    ])
    .expect("systemd-analyze");
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "the unit's exposure stays under 2.0: {}",
        report.lines().last().unwrap_or_default()
    );
}

#[test]
fn systemd_waits_for_the_drain_before_it_kills() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let unit = std::fs::read_to_string(deploy.join("gatehouse.service")).expect("unit");
    let config: toml::Table = std::fs::read_to_string(deploy.join("gatehouse.toml"))
        .expect("config")
        .parse()
        .expect("toml");
    let drain = config["shutdown_timeout"].as_integer().expect("seconds");
    let stop: i64 = unit_value(&unit, "TimeoutStopSec")
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(
        (drain + 1..=drain + 10).contains(&stop),
        "TimeoutStopSec ({stop}) gives shutdown_timeout ({drain}) a few seconds more"
    );
    for key in ["User", "CapabilityBoundingSet", "AmbientCapabilities"] {
        assert!(unit_value(&unit, key).is_some(), "the unit sets {key}");
    }
    assert_eq!(
        unit_value(&unit, "CapabilityBoundingSet"),
        Some("CAP_NET_BIND_SERVICE")
    );
}

#[test]
fn a_restart_under_wrk_load_has_no_socket_error() {
    let activated = Activated::new();
    let first = activated.start();
    // New connections throughout (`Connection: close`): each one would show a refused
    // connect or an unanswered request as a socket error.
    let wrk = support::tools::spawn_tool(
        std::process::Command::new("wrk")
            .args(["-t1", "-c4", "-d3s", "--timeout", "5s"])
            .args(["-H", "Connection: close"])
            .arg(format!("https://127.0.0.1:{}/", activated.addr.port()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
        "apt-get install wrk",
    );
    let Some(wrk) = wrk else {
        return;
    };
    let handshakes = r#"gatehouse_tls_handshakes_total{listener="web",result="ok"}"#;
    let reached = std::iter::repeat_with(|| first.metric(handshakes))
        .take(300)
        .any(|v| v > Some(0.0));
    assert!(reached, "wrk reached the first instance");
    let (_first, second) = activated.restart(first);
    let out = support::tools::output_text(&wrk.wait_with_output().expect("wrk"));
    let served_after = second.metric(handshakes);
    assert!(
        served_after > Some(0.0),
        "wrk reached the second instance: {out}"
    );
    assert!(out.contains("requests in"), "{out}");
    assert!(
        !out.contains("Socket errors"),
        "no connection refused or unanswered: {out}"
    );
    assert!(!out.contains("Non-2xx"), "{out}");
    assert_eq!(
        second.log_count("Illegal SNI"),
        0,
        "wrk's IP address as SNI is rustls' line, not the operator's: {}",
        second.log_text()
    );
}
