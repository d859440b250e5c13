//! Gatehouse under systemd: the notification protocol of `Type=notify`, played by the
//! test with a Unix datagram socket as systemd does (`NOTIFY_SOCKET`), and socket
//! activation, with the listening socket held by the test as systemd holds it.

#[path = "support/mod.rs"]
mod support;

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gatehouse_tests::upstream::{http_upstream, rt};
use gatehouse_tests::{STEP_TIMEOUT, connect};
use support::chores::s;
use support::deploy::{Env, ListenerToml, WAIT};
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Requests on a new connection each, until told to stop: (answered 200, failed).
async fn new_connections(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let one = async {
            let (mut tls, _) = connect(addr, Some("portal.test")).await.ok()?;
            tls.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await.ok()?;
            Some(got.starts_with(b"HTTP/1.1 200"))
        };
        match tokio::time::timeout(STEP_TIMEOUT, one).await {
            Ok(Some(true)) => ok += 1,
            _ => failed += 1,
        }
    }
    (ok, failed)
}

#[test]
fn a_restart_on_the_socket_systemd_holds_refuses_no_connection() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    // The listening socket, held here as systemd holds it for gatehouse.socket.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let listener = ListenerToml::http(http_upstream("portal"))
        .certificates(&["portal"])
        .bind(addr);
    let config = s(&env.config(&listener.to_toml()));
    let args = ["run", "--config", config.as_str()];
    let mut first = Gatehouse::start_activated(&held, &args);
    assert!(
        first
            .log_text()
            .contains("accepting on the socket systemd passed")
    );
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt().spawn(new_connections(addr, stop.clone()));
    // Restart, as `systemctl restart` does: stop, then start on the same socket.
    first.signal("TERM");
    assert!(
        first.wait_exit(WAIT).is_some(),
        "the first one drains and exits"
    );
    let second = Gatehouse::start_activated(&held, &args);
    assert!(
        second
            .log_text()
            .contains("accepting on the socket systemd passed")
    );
    // Load on the second for a moment, then stop.
    let answered_after = rt().block_on(async {
        let mut ok = 0;
        for _ in 0..20 {
            if let Ok(Ok((mut tls, _))) =
                tokio::time::timeout(STEP_TIMEOUT, connect(addr, Some("portal.test"))).await
            {
                let _ = tls
                    .write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n")
                    .await;
                let mut got = Vec::new();
                let _ = tls.read_to_end(&mut got).await;
                ok += u64::from(got.starts_with(b"HTTP/1.1 200"));
            }
        }
        ok
    });
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = rt().block_on(load).expect("the load task");
    assert_eq!(answered_after, 20, "the second instance serves");
    assert!(ok > 0);
    assert_eq!(
        failed, 0,
        "no connection refused or failed across the restart ({ok} answered)"
    );
}
