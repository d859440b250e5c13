//! What TLS clients see of Gatehouse's handshakes: the full chain as `openssl s_client`
//! verifies it, RSA certificates signing with SHA-256 as OpenSSL servers do,
//! `min_tls_version`, and session resumption on by default and off when asked.

#[path = "support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use gatehouse_tests::upstream::{http_upstream, rt};
use gatehouse_tests::{STEP_TIMEOUT, connect_with, inspecting_client_config, openssl_fixtures};
use support::deploy::{Env, http_listener, portal_and_engine, text};
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn openssl_s_client_sees_the_full_chain_and_verifies_it() {
    let (env, g) = portal_and_engine("");
    let addr = g.addr("web");
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "engine.test",
            "-showcerts",
            // AES-256 first, as OpenSSL lists it by default.
            "-ciphersuites",
            "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
            "-CAfile",
        ])
        .arg(env.path().join("root.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl (is it installed?)");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("openssl output");
    let out = text(&out);
    assert!(
        out.contains("CN = engine.test") || out.contains("CN=engine.test"),
        "{out}"
    );
    assert!(
        out.contains("Gatehouse rcgen Intermediate"),
        "the intermediate is served: {out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(
        out.contains("TLS_AES_128_GCM_SHA256"),
        "the server prefers AES-128-GCM (SHA-256 key schedule) over the client's order: {out}"
    );
}

#[test]
fn rsa_certificates_sign_handshakes_with_sha256_as_openssl_servers_do() {
    // An RSA leaf made by the openssl CLI, and an ECDSA one from rcgen.
    let mut env = Env::new();
    let fx = openssl_fixtures();
    env.certificate_block(
        "portal",
        &format!(
            "cert = \"{}\"\nkey = \"{}\"\nchain = \"{}\"",
            fx.join("leaf-rsa2048.crt").display(),
            fx.join("leaf-rsa2048.key").display(),
            fx.join("inter.crt").display(),
        ),
    );
    env.certificate("engine", &["engine.test"]);
    let g = Gatehouse::start(&env.config(&http_listener(http_upstream("portal"), "")));
    let addr = g.addr("web").to_string();
    for (name, version, want) in [
        ("leaf.test", "-tls1_3", "Peer signature type: RSA-PSS"),
        ("leaf.test", "-tls1_2", "Peer signature type: RSA-PSS"),
        ("engine.test", "-tls1_3", "Peer signature type: ECDSA"),
    ] {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", name, version])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl (is it installed?)");
        let out = text(&out);
        // OpenSSL 3 offers SHA-512 too; the key, not the hash, bounds RSA's strength, and
        // SHA-256 is the cheaper to sign (nginx and HAProxy pick it as well).
        assert!(
            out.contains(want) && out.contains("Peer signing digest: SHA256"),
            "{name} {version}: signed with {want}, SHA-256:\n{out}"
        );
    }
}

#[test]
fn min_tls_version_1_3_refuses_tls_1_2_clients() {
    let (env, g) = portal_and_engine("min_tls_version = \"1.3\"");
    let addr = g.addr("web");
    let out = env.curl(addr, "portal.test", "/", &["--tls-max", "1.2"]);
    assert!(
        !out.status.success(),
        "TLS 1.2 must be refused: {}",
        text(&out)
    );
    let out = env.curl(addr, "portal.test", "/", &["--tlsv1.3"]);
    assert!(text(&out).contains("upstream=portal"), "{}", text(&out));
    let (env, g) = portal_and_engine("");
    let out = env.curl(g.addr("web"), "portal.test", "/", &["--tls-max", "1.2"]);
    assert!(
        text(&out).contains("upstream=portal"),
        "TLS 1.2 works by default: {}",
        text(&out)
    );
}

#[test]
fn session_resumption_is_on_by_default_and_can_be_turned_off() {
    for (extra, expect_resumed) in [("", true), ("session_resumption = false", false)] {
        let (_env, g) = portal_and_engine(extra);
        let addr = g.addr("web");
        let kinds = rt().block_on(async {
            let config = inspecting_client_config(&[]);
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let (mut tls, _) = connect_with(config.clone(), addr, Some("portal.test"))
                    .await
                    .expect("handshake");
                // TLS 1.3 tickets arrive after the handshake: exchange a request to receive them.
                tls.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n")
                    .await
                    .expect("write");
                let mut buf = Vec::new();
                let _ = tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut buf)).await;
                kinds.push(tls.get_ref().1.handshake_kind());
            }
            kinds
        });
        let resumed = kinds[1] == Some(rustls::HandshakeKind::Resumed);
        assert_eq!(
            resumed, expect_resumed,
            "{extra:?}: handshake kinds {kinds:?}"
        );
    }
}
