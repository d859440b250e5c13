//! Reloads under load: SIGHUP and `POST /reload` alternating, cycling a good renewal with
//! the broken ones operators produce (a key that does not match, an expired certificate,
//! garbage, a pair caught half-written), while clients keep requesting on kept-alive and
//! new connections. No request may fail, the served certificate is always the last good
//! one, and a WebSocket and a TCP-mode stream opened before the first reload still echo
//! after the last. `SOAK_RELOADS` sets the count (50 here; `benches/soak.sh` runs 1,000
//! on the release build and reports the figures in docs/reliability.md).

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gatehouse_tests::faults::tcp_echo;
use gatehouse_tests::upstream::{http_upstream, rt};
use gatehouse_tests::{LeafSpec, STEP_TIMEOUT, connect, serial_of, write};
use support::clients::{get_portal, portal_keep_alive, portal_websocket};
use support::deploy::{Env, ListenerToml};
use support::probes::get_on_new_connection;
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const DEFAULT_RELOADS: usize = 50;

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Requests that succeeded and failed, by the load's clients.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

impl Tally {
    fn count(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests on one kept-alive connection, back to back, until told to stop.
async fn keep_alive_load(addr: std::net::SocketAddr, tally: Arc<Tally>) {
    let (mut send, _, _) = portal_keep_alive(addr).await;
    while !tally.stop.load(Ordering::Relaxed) {
        let answered = tokio::time::timeout(STEP_TIMEOUT, get_portal(&mut send)).await;
        let ok = match answered {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let body = http_body_util::BodyExt::collect(resp.into_body()).await;
                status == 200 && body.is_ok()
            }
            _ => false,
        };
        tally.count(ok);
    }
}

/// A new TLS connection per request, until told to stop.
async fn new_connection_load(addr: std::net::SocketAddr, tally: Arc<Tally>) {
    while !tally.stop.load(Ordering::Relaxed) {
        tally.count(get_on_new_connection(addr).await);
    }
}

/// Lines of the log that report certificate "portal" (one per load or reload).
fn portal_reports(g: &Gatehouse) -> usize {
    g.log_lines()
        .iter()
        .filter(|l| l.contains("certificate \"portal\":"))
        .count()
}

/// Writes the material of reload `i`: a good renewal every fifth, else a broken one.
/// Returns the serial of the good renewal, if this one is.
fn write_material(env: &Env, i: usize, current_key: &mut String) -> Option<String> {
    let dir = env.path();
    let inter = &env.pki.inter;
    match i % 5 {
        0 => {
            let leaf = inter.leaf(&["portal.test"]);
            write(dir, "portal.key", &leaf.key_pem);
            write(dir, "portal.crt", &leaf.cert_pem);
            *current_key = leaf.key_pem.clone();
            return Some(leaf.serial());
        }
        1 => {
            // A certificate for another key than the one in portal.key.
            write(dir, "portal.crt", &inter.leaf(&["portal.test"]).cert_pem);
        }
        2 => {
            let expired = inter.leaf_with(LeafSpec::new(&["portal.test"]).validity(-100, -1));
            write(dir, "portal.key", &expired.key_pem);
            write(dir, "portal.crt", &expired.cert_pem);
        }
        3 => {
            write(dir, "portal.crt", "-----BEGIN CERTIFICATE-----\ngarbage\n");
        }
        _ => {
            // Half-written: the new certificate is in place, its key not yet.
            write(dir, "portal.key", current_key.as_str());
            write(dir, "portal.crt", &inter.leaf(&["portal.test"]).cert_pem);
        }
    }
    None
}

#[test]
fn reloads_of_good_and_broken_renewals_under_load_lose_no_request() {
    let reloads: usize = std::env::var("SOAK_RELOADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_RELOADS);
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    env.certificate("collector", &["collector.test"]);
    let web = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let tcp = format!(
        "[[listener]]\nname = \"collector\"\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncertificates = [\"collector\"]\nupstream = \"tcp://{}\"\n",
        tcp_echo()
    );
    let config = env.config(&format!("{web}{tcp}"));
    let g = Gatehouse::start(&config);
    let (addr, collector) = (g.addr("web"), g.addr("collector"));
    let mut current_key = std::fs::read_to_string(env.path().join("portal.key")).expect("key");
    let mut good = env.serials["portal"].clone();

    // Long-lived streams, opened before the first reload.
    let (mut ws, mut stream) = rt().block_on(async {
        let (ws, _) = portal_websocket(addr).await;
        let (stream, _) = connect(collector, Some("collector.test"))
            .await
            .expect("handshake");
        (ws, stream)
    });
    let tally = Arc::new(Tally::default());
    let load = [
        rt().spawn(keep_alive_load(addr, tally.clone())),
        rt().spawn(new_connection_load(addr, tally.clone())),
    ];
    let rss_before = rss_kib(g.pid());
    for i in 0..reloads {
        if let Some(serial) = write_material(&env, i, &mut current_key) {
            good = serial;
        }
        let reported = portal_reports(&g);
        if i % 2 == 0 {
            g.signal("HUP");
        } else {
            let out = std::process::Command::new("curl")
                .args(["-sS", "-X", "POST", &g.admin_url("/reload")])
                .output()
                .expect("curl");
            assert!(out.status.success());
        }
        let reloaded = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            portal_reports(&g) > reported
        });
        assert!(reloaded, "reload {i} reported:\n{}", g.log_text());
        let served = rt()
            .block_on(connect(addr, Some("portal.test")))
            .expect("handshake")
            .1;
        assert_eq!(
            serial_of(&served[0]),
            good,
            "reload {i}: the last good certificate is served"
        );
    }
    tally.stop.store(true, Ordering::Relaxed);
    rt().block_on(async {
        for task in load {
            tokio::time::timeout(STEP_TIMEOUT, task)
                .await
                .expect("the load stops")
                .expect("load task");
        }
        ws.send(Message::text("still here")).await.expect("send");
        let echo = tokio::time::timeout(STEP_TIMEOUT, ws.next()).await;
        assert!(
            matches!(&echo, Ok(Some(Ok(m))) if m.to_text().ok() == Some("still here")),
            "the WebSocket opened before the reloads still echoes: {echo:?}"
        );
        stream.write_all(b"ping").await.expect("write");
        let mut back = [0u8; 4];
        tokio::time::timeout(STEP_TIMEOUT, stream.read_exact(&mut back))
            .await
            .expect("in time")
            .expect("the TCP stream opened before the reloads still echoes");
        assert_eq!(&back, b"ping");
    });
    let rss_after = rss_kib(g.pid());
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak: {reloads} reloads, {ok} requests answered, {failed} failed, RSS {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(failed, 0, "no request fails during reloads");
    assert!(ok > 0, "the load ran");
}
