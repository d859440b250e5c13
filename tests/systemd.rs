//! Gatehouse under systemd: the notification protocol of `Type=notify`, played by the
//! test with a Unix datagram socket as systemd does (`NOTIFY_SOCKET`).

#[path = "support/mod.rs"]
mod support;

use std::os::unix::net::UnixDatagram;

use gatehouse_tests::upstream::http_upstream;
use support::chores::s;
use support::deploy::{Env, ListenerToml, WAIT};
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
