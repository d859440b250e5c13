//! `ocsp_fetch = true` through the real binary: the OCSP response is fetched from an
//! `openssl ocsp -port` responder on loopback (named in the certificate's Authority
//! Information Access), stapled, and kept for a restart without the responder.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use gatehouse_tests::openssl_fixtures;
use gatehouse_tests::upstream::http_upstream;
use support::deploy::{Env, ListenerToml};
use support::openssl::{OCSP_AS_INTERMEDIATE, openssl_in, p256_key, status_request};
use support::process::Gatehouse;

/// A free port on loopback, for the OCSP responder.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A leaf for leaf.test whose Authority Information Access names an OCSP responder on
/// `port`, issued by the openssl-made intermediate, with an index that says it is good.
fn leaf_with_responder(dir: &Path, port: u16) {
    let fx = openssl_fixtures();
    for f in ["inter.crt", "inter.key"] {
        std::fs::copy(fx.join(f), dir.join(f)).expect("copy fixture");
    }
    let ext = format!(
        "subjectAltName=DNS:leaf.test\nextendedKeyUsage=serverAuth\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:{port}\n"
    );
    std::fs::write(dir.join("aia.ext"), ext).expect("ext");
    let openssl = |args: &[&str]| openssl_in(dir, args);
    p256_key(dir, "aia.key");
    openssl(&[
        "req",
        "-new",
        "-key",
        "aia.key",
        "-subj",
        "/CN=leaf.test",
        "-out",
        "aia.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "aia.csr",
        "-CA",
        "inter.crt",
        "-CAkey",
        "inter.key",
        "-days",
        "30",
        "-set_serial",
        "0x1234abcd",
        "-extfile",
        "aia.ext",
        "-out",
        "aia.crt",
    ]);
    std::fs::write(
        dir.join("index.txt"),
        "V\t301231235959Z\t\t1234ABCD\tunknown\t/CN=leaf.test\n",
    )
    .expect("index");
}

/// `openssl ocsp` answering on `port` as the intermediate, once it says it listens (it
/// serves one connection at a time, and a probe connection would stall it).
fn responder(dir: &Path, port: u16) -> std::process::Child {
    use std::io::BufRead;
    let mut child = Command::new("openssl")
        .args(["ocsp", "-index", "index.txt", "-port", &port.to_string()])
        .args(OCSP_AS_INTERMEDIATE)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl ocsp");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("waiting for OCSP client connections") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(support::deploy::WAIT)
        .expect("the responder listens");
    child
}

#[test]
fn ocsp_fetch_asks_the_responder_staples_and_keeps_the_response_for_a_restart() {
    let mut env = Env::new();
    let port = free_port();
    leaf_with_responder(env.path(), port);
    let mut ocsp = responder(env.path(), port);
    env.certificate_block(
        "portal",
        "cert = \"aia.crt\"\nkey = \"aia.key\"\nchain = \"inter.crt\"\nocsp_fetch = true",
    );
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let config = env.config(&listener.to_toml());
    let mut g = Gatehouse::start(&config);
    let addr = g.addr("web");
    let start = std::time::Instant::now();
    let mut seen = status_request(addr);
    while !seen.contains("Cert Status: good") {
        assert!(
            start.elapsed() < support::deploy::WAIT,
            "fetched and stapled: {seen}\n{}",
            g.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen = status_request(addr);
    }
    let _ = ocsp.kill();
    let _ = ocsp.wait();
    assert!(env.path().join("state/ocsp/portal.der").exists());

    // A restart with the responder gone staples the kept response at once.
    g.signal("TERM");
    assert!(g.wait_exit(support::deploy::WAIT).is_some());
    let g = Gatehouse::start(&config);
    let at_once = status_request(g.addr("web"));
    assert!(
        at_once.contains("Cert Status: good"),
        "{at_once}\n{}",
        g.log_text()
    );
    assert!(
        g.wait_for_log(
            |l| l.contains("OCSP response not fetched"),
            support::deploy::WAIT
        )
        .is_some(),
        "the failed fetch is said: {}",
        g.log_text()
    );
}
