//! `watch = true`: certificates replaced on disk are served without a signal, the way
//! kubelet updates a Secret volume and the way an operator copies files by hand.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gatehouse_tests::upstream::{http_upstream, rt};
use gatehouse_tests::{Leaf, connect, serial_of, write};
use support::deploy::{Env, ListenerToml, WAIT};
use support::probes::get_on_new_connection;
use support::process::Gatehouse;

/// The serial of the leaf served for portal.test, on a new connection.
fn served_serial(addr: SocketAddr) -> Option<String> {
    rt().block_on(async {
        let (_, chain) = connect(addr, Some("portal.test")).await.ok()?;
        chain.first().map(|c| serial_of(c))
    })
}

/// Waits (bounded by `within`) until `serial` is served; returns how long it took.
fn until_served(addr: SocketAddr, serial: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if served_serial(addr).as_deref() == Some(serial) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A Secret volume as kubelet's atomic writer keeps it: the files in a timestamped
/// directory, `..data` linking to it, and each key a link through `..data`.
struct SecretVolume<'a> {
    dir: &'a Path,
    generation: u32,
}

impl<'a> SecretVolume<'a> {
    fn new(dir: &'a Path, leaf: &Leaf, chain: &str) -> Self {
        std::fs::create_dir_all(dir).expect("volume dir");
        let mut volume = Self { dir, generation: 0 };
        volume.update(leaf, chain);
        for key in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).expect("key link");
        }
        volume
    }

    /// kubelet's sequence: write the new timestamped directory, point `..data_tmp` at it,
    /// rename `..data_tmp` over `..data`, remove the previous directory.
    fn update(&mut self, leaf: &Leaf, chain: &str) {
        self.generation += 1;
        let name = format!(
            "..2026_12_07_10_00_0{}.{}",
            self.generation,
            1000 + self.generation
        );
        let data = self.dir.join(&name);
        std::fs::create_dir(&data).expect("timestamped dir");
        write(&data, "tls.crt", format!("{}{chain}", leaf.cert_pem));
        write(&data, "tls.key", &leaf.key_pem);
        let previous = std::fs::read_link(self.dir.join("..data")).ok();
        std::os::unix::fs::symlink(&name, self.dir.join("..data_tmp")).expect("..data_tmp");
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).expect("rename");
        if let Some(previous) = previous {
            std::fs::remove_dir_all(self.dir.join(previous)).expect("remove the old data");
        }
    }
}

/// Requests on new connections until stopped: (answered, failed).
fn load(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u32, u32)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, 0);
        // Bounded: the test stops it within seconds; this is the backstop.
        for _ in 0..10_000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if rt().block_on(get_on_new_connection(addr)) {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        (ok, failed)
    })
}

#[test]
fn a_kubernetes_secret_update_is_served_within_two_seconds_and_fails_no_request() {
    let mut env = Env::new();
    let chain = env.pki.inter.cert_pem.clone();
    let volume_dir = env.path().join("secret");
    let mut volume = SecretVolume::new(&volume_dir, &env.pki.inter.leaf(&["portal.test"]), &chain);
    env.certificate_block(
        "portal",
        "cert = \"secret/tls.crt\"\nkey = \"secret/tls.key\"",
    );
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let g = Gatehouse::start(&env.config_with("watch = true", &listener.to_toml()));
    let addr = g.addr("web");
    assert!(
        g.log_text()
            .contains("watching the certificate and configuration files")
    );

    let stop = Arc::new(AtomicBool::new(false));
    let requests = load(addr, stop.clone());
    let renewed = env.pki.inter.leaf(&["portal.test"]);
    volume.update(&renewed, &chain);
    let took = until_served(addr, &renewed.serial(), Duration::from_secs(2));
    // A second renewal: the directory watched for the first is gone by now.
    let again = env.pki.inter.leaf(&["portal.test"]);
    volume.update(&again, &chain);
    let took_again = until_served(addr, &again.serial(), Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = requests.join().expect("load");

    assert!(
        took.is_some(),
        "the renewal is served within 2 s: {}",
        g.log_text()
    );
    assert!(took_again.is_some(), "and the next one: {}", g.log_text());
    assert!(ok > 0);
    assert_eq!(failed, 0, "no request fails while the Secret changes");
    assert_eq!(g.log_count("ERROR"), 0, "{}", g.log_text());
}

/// A deployment with the portal certificate as plain files and `watch = true`.
fn watched_portal() -> (Env, Gatehouse) {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let g = Gatehouse::start(&env.config_with("watch = true", &listener.to_toml()));
    (env, g)
}

#[test]
fn a_pair_copied_one_file_at_a_time_is_served_once_both_are_there() {
    let (env, g) = watched_portal();
    let addr = g.addr("web");
    let old = env.serials["portal"].clone();
    let renewed = env.pki.inter.leaf(&["portal.test"]);
    // The certificate first, as `cp portal.crt …` does; the key comes a moment later.
    write(env.path(), "portal.crt", &renewed.cert_pem);
    assert!(
        g.wait_for_log(|l| l.contains("do not load together yet"), WAIT)
            .is_some(),
        "the watcher notices the half-written pair: {}",
        g.log_text()
    );
    assert_eq!(
        served_serial(addr),
        Some(old),
        "never the half-written pair"
    );
    write(env.path(), "portal.key", &renewed.key_pem);
    assert!(
        until_served(addr, &renewed.serial(), WAIT).is_some(),
        "{}",
        g.log_text()
    );
    assert_eq!(g.log_count("do not load together yet"), 1, "said once");
    assert_eq!(
        g.log_count("ERROR"),
        0,
        "a pair in the middle of its update is not an error: {}",
        g.log_text()
    );
}

#[test]
fn a_certificate_for_another_key_is_reported_once_and_the_old_one_serves() {
    let (env, g) = watched_portal();
    let addr = g.addr("web");
    let old = env.serials["portal"].clone();
    let stranger = env.pki.inter.leaf(&["portal.test"]);
    write(env.path(), "portal.crt", &stranger.cert_pem);
    let reported = g.wait_for_log(|l| l.contains("ERROR"), WAIT + WAIT);
    assert!(
        reported.is_some_and(|l| l.contains("matches the private key")),
        "reported after the wait for the rest of the pair: {}",
        g.log_text()
    );
    assert_eq!(
        served_serial(addr),
        Some(old),
        "the previous version serves"
    );
    // Nothing changes any more: nothing more is said.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(g.log_count("ERROR"), 1, "{}", g.log_text());
}

/// The status of `POST /reload` with `token`.
fn reload_with(g: &Gatehouse, token: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(g.admin_url("/reload"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_rotated_admin_token_replaces_the_old_one() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let (old, new) = ("old-token-0123456789abcdef", "new-token-0123456789abcdef");
    write(env.path(), "token", old);
    let top = "watch = true\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n";
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let g = Gatehouse::start(&env.config_with(top, &listener.to_toml()));
    assert_eq!(reload_with(&g, old), "200");
    write(env.path(), "token", new);
    let start = Instant::now();
    while reload_with(&g, new) != "200" {
        assert!(
            start.elapsed() < WAIT,
            "the new token works: {}",
            g.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(reload_with(&g, old), "401", "the old token no longer does");
}
