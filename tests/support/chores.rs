//! Running the certificate chores as an operator does: `gatehouse certs …` with its exit
//! code and output, the files it leaves, and what the proxy then serves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse_tests::connect;
use gatehouse_tests::upstream::{http_upstream, rt};
use rustls_pki_types::CertificateDer;

use super::deploy::{Env, ListenerToml, text};
use super::process::{Gatehouse, gatehouse};

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `gatehouse …`, checks no private key material reached the output, returns it.
pub fn run(args: &[&str]) -> Output {
    let out = gatehouse(args);
    let all = text(&out);
    assert!(
        !all.contains("PRIVATE KEY"),
        "no command prints a private key:\n{all}"
    );
    out
}

pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "gatehouse {args:?}:\n{}",
        text(&out)
    );
    text(&out)
}

pub fn refused(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "gatehouse {args:?} must fail:\n{}",
        text(&out)
    );
    text(&out)
}

/// Every file of `dir` and its bytes, to prove a refusal touched nothing.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| (e.path(), std::fs::read(e.path()).expect("read")))
        .collect();
    v.sort();
    v
}

pub fn served(g: &Gatehouse, sni: &str) -> Vec<CertificateDer<'static>> {
    rt().block_on(connect(g.addr("web"), Some(sni)))
        .expect("handshake")
        .1
}

/// portal (portal.test, engine.test) on one listener, engine.test routed.
pub fn deployment() -> (Env, Gatehouse, PathBuf) {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test", "engine.test"]);
    let upstream = http_upstream("portal");
    let config = env.config(
        &ListenerToml::http(upstream)
            .certificates(&["portal"])
            .route("engine.test", upstream)
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    (env, g, config)
}

pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}
