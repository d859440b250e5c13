//! The TLS features the anchors have, through the real binary and the openssl CLI: an
//! ECDSA and an RSA certificate for the same names, each client getting the one it can
//! verify.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use gatehouse_tests::openssl_fixtures;
use gatehouse_tests::upstream::http_upstream;
use support::chores::s;
use support::deploy::{Env, ListenerToml};
use support::process::{Gatehouse, gatehouse};
use support::tools::output_text;

/// `[[certificate]]` blocks for the openssl-made leaves of `leaf.test`, by key type.
fn openssl_certificate(env: &mut Env, name: &str, leaf: &str) {
    let fx = openssl_fixtures();
    let path = |f: &str| s(&fx.join(f));
    env.certificate_block(
        name,
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nchain = \"{}\"",
            path(&format!("{leaf}.crt")),
            path(&format!("{leaf}.key")),
            path("inter.crt"),
        ),
    );
}

/// What `openssl s_client` says of a handshake with `extra` options.
fn s_client(addr: SocketAddr, root: &Path, extra: &[&str]) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "leaf.test",
        ])
        .arg("-CAfile")
        .arg(root)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    output_text(&out)
}

#[test]
fn each_client_gets_the_ecdsa_or_the_rsa_certificate_it_can_verify() {
    let mut env = Env::new();
    openssl_certificate(&mut env, "portal-ecdsa", "leaf-ecp256");
    openssl_certificate(&mut env, "portal-rsa", "leaf-rsa2048");
    let listener =
        ListenerToml::http(http_upstream("portal")).certificates(&["portal-ecdsa", "portal-rsa"]);
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");
    let root = openssl_fixtures().join("root.crt");

    let modern = s_client(addr, &root, &[]);
    assert!(modern.contains("Verify return code: 0 (ok)"), "{modern}");
    assert!(
        modern.contains("Peer signature type: ECDSA"),
        "a default client gets ECDSA: {modern}"
    );

    let rsa_only = s_client(addr, &root, &["-sigalgs", "rsa_pss_rsae_sha256"]);
    assert!(
        rsa_only.contains("Verify return code: 0 (ok)"),
        "{rsa_only}"
    );
    assert!(
        rsa_only.contains("Server public key is 2048 bit")
            && rsa_only.contains("Peer signature type: RSA-PSS"),
        "a client without ECDSA gets RSA: {rsa_only}"
    );

    let tls12_rsa = s_client(addr, &root, &["-tls1_2", "-sigalgs", "RSA+SHA256"]);
    assert!(
        tls12_rsa.contains("Server public key is 2048 bit")
            && tls12_rsa.contains("Verify return code: 0 (ok)"),
        "TLS 1.2 with PKCS#1 only: {tls12_rsa}"
    );
}

#[test]
fn check_warns_of_a_certificate_that_can_never_be_chosen() {
    let mut env = Env::new();
    openssl_certificate(&mut env, "portal-p256", "leaf-ecp256");
    openssl_certificate(&mut env, "portal-p384", "leaf-ecp384");
    openssl_certificate(&mut env, "portal-rsa", "leaf-rsa2048");
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&[
        "portal-p256",
        "portal-p384",
        "portal-rsa",
    ]);
    let out = gatehouse(&["check", "--config", &s(&env.config(&listener.to_toml()))]);
    let text = output_text(&out);
    assert!(
        text.contains("certificate \"portal-p384\" can never be chosen"),
        "two ECDSA certificates for the same names: {text}"
    );
    assert!(
        !text.contains("\"portal-rsa\" can never be chosen"),
        "an RSA one beside them is chosen by RSA-only clients: {text}"
    );
}
