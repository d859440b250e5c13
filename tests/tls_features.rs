//! The TLS features the anchors have, through the real binary with curl and the openssl
//! CLI: an ECDSA and an RSA certificate for the same names, each client getting the one it
//! can verify; client certificates (mutual TLS) verified against a CA and a CRL.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Command;

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::{Ca, LeafSpec, openssl_fixtures, write};
use support::chores::s;
use support::deploy::{Env, ListenerToml, WAIT};
use support::openssl::s_client;
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

/// Client certificates for mutual TLS: `alice` (good), `mallory` (revoked by the CRL),
/// `eve` (from another CA), written as `NAME.crt` / `NAME.key`, with `client-ca.pem` and
/// `clients.crl`.
fn client_pki(env: &Env) {
    let ca = Ca::root("Gatehouse Test Client CA");
    let other = Ca::root("Somebody Else's CA");
    let client = |ca: &Ca, name: &str| {
        let names = [name];
        let mut spec = LeafSpec::new(&names);
        spec.client_auth = true;
        ca.leaf_with(spec)
    };
    let alice = client(&ca, "alice.clients.test");
    let mallory = client(&ca, "mallory.clients.test");
    let eve = client(&other, "eve.clients.test");
    for (name, leaf) in [("alice", &alice), ("mallory", &mallory), ("eve", &eve)] {
        write(env.path(), &format!("{name}.crt"), &leaf.cert_pem);
        write(env.path(), &format!("{name}.key"), &leaf.key_pem);
    }
    write(env.path(), "client-ca.pem", &ca.cert_pem);
    write(env.path(), "clients.crl", ca.crl(&[&mallory]));
    write(env.path(), "no-revocations.crl", ca.crl(&[]));
}

/// `curl` to the portal with `extra` options (a client certificate, say).
fn curl(env: &Env, addr: SocketAddr, extra: &[&str]) -> std::process::Output {
    let names: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    std::process::Command::new("curl")
        .current_dir(env.path())
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            "root.pem",
            "--resolve",
        ])
        .arg(format!("portal.test:{}:127.0.0.1", addr.port()))
        .args(&args)
        .arg(format!("https://portal.test:{}/", addr.port()))
        .output()
        .expect("curl")
}

fn mutual_tls(mode: &str) -> String {
    format!(
        "client_auth = \"{mode}\"\nclient_ca_file = \"client-ca.pem\"\nclient_crl_file = \"clients.crl\""
    )
}

#[test]
fn required_client_certificates_are_verified_and_passed_on_as_headers() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    client_pki(&env);
    let listener = ListenerToml::http(http_upstream("portal"))
        .certificates(&["portal"])
        .set(&mutual_tls("required"));
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");

    let alice = curl(
        &env,
        addr,
        &[
            "--cert",
            "alice.crt",
            "--key",
            "alice.key",
            "-H",
            "X-Client-Cert-Subject: CN=admin",
        ],
    );
    let seen = output_text(&alice);
    assert!(alice.status.success(), "{seen}");
    assert!(seen.contains("x-client-cert-verified: SUCCESS"), "{seen}");
    assert!(
        seen.contains("x-client-cert-subject: CN=alice.clients.test"),
        "{seen}"
    );
    assert!(
        !seen.contains("CN=admin"),
        "what the client sent under that name is dropped: {seen}"
    );
    assert!(
        seen.contains("x-client-cert-san: DNS:alice.clients.test"),
        "{seen}"
    );
    let fingerprint = seen
        .lines()
        .find_map(|l| l.strip_prefix("x-client-cert-fingerprint: "))
        .expect("fingerprint");
    assert_eq!(fingerprint.len(), 64, "SHA-256, hex");

    for (who, args) in [
        ("no certificate", vec![]),
        (
            "another CA's",
            vec!["--cert", "eve.crt", "--key", "eve.key"],
        ),
        (
            "a revoked one",
            vec!["--cert", "mallory.crt", "--key", "mallory.key"],
        ),
    ] {
        let out = curl(&env, addr, &args);
        assert!(
            !out.status.success(),
            "{who} is refused: {}",
            output_text(&out)
        );
    }
    let refused = r#"gatehouse_tls_handshakes_total{listener="web",result="client_certificate"}"#;
    let counted = g.wait_for_metric(refused, |v| v >= 2.0, WAIT);
    assert!(counted.is_some(), "{:?}", g.metric(refused));

    // openssl s_client with the good certificate.
    let out =
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-servername",
                "portal.test",
                "-ign_eof",
            ])
            .args([
                "-CAfile",
                "root.pem",
                "-cert",
                "alice.crt",
                "-key",
                "alice.key",
            ])
            .current_dir(env.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(
                    b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n",
                )?;
                child.wait_with_output()
            })
            .expect("s_client");
    let text = output_text(&out);
    assert!(text.contains("x-client-cert-verified: SUCCESS"), "{text}");
}

#[test]
fn an_optional_client_certificate_says_none_when_absent() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    client_pki(&env);
    let listener = ListenerToml::http(http_upstream("portal"))
        .certificates(&["portal"])
        .set(&mutual_tls("optional"));
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");
    let anonymous = output_text(&curl(
        &env,
        addr,
        &["-H", "X-Client-Cert-Verified: SUCCESS"],
    ));
    assert!(
        anonymous.contains("x-client-cert-verified: NONE"),
        "{anonymous}"
    );
    assert!(!anonymous.contains("SUCCESS"), "{anonymous}");
    let eve = curl(&env, addr, &["--cert", "eve.crt", "--key", "eve.key"]);
    assert!(!eve.status.success(), "a certificate presented must verify");
}

#[test]
fn a_tcp_listener_requires_the_client_certificate_before_piping() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    client_pki(&env);
    let listener = ListenerToml::tcp(gatehouse_tests::faults::tcp_echo())
        .certificates(&["portal"])
        .set(&mutual_tls("required"));
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");
    // s_client -quiet waits for the server to close, which an echo never does: read what
    // comes back for a bounded time, then end it.
    let echo = |extra: &[&str]| {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &addr.to_string()])
            .args(["-servername", "portal.test", "-CAfile", "root.pem"])
            .args(extra)
            .current_dir(env.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("s_client");
        use std::io::{BufRead, Write};
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(b"ping\n");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let first = std::io::BufReader::new(stdout).lines().next();
            let _ = tx.send(first.and_then(Result::ok).unwrap_or_default());
        });
        let line = rx
            .recv_timeout(gatehouse_tests::STEP_TIMEOUT)
            .unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);
        line
    };
    assert_eq!(echo(&["-cert", "alice.crt", "-key", "alice.key"]), "ping");
    assert_eq!(echo(&[]), "", "no certificate, no pipe");
}

#[test]
fn a_new_crl_is_read_at_reload() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    client_pki(&env);
    let revoked = std::fs::read(env.path().join("clients.crl")).expect("crl");
    std::fs::copy(
        env.path().join("no-revocations.crl"),
        env.path().join("clients.crl"),
    )
    .expect("cp");
    let listener = ListenerToml::http(http_upstream("portal"))
        .certificates(&["portal"])
        .set(&mutual_tls("required"));
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let addr = g.addr("web");
    let mallory = ["--cert", "mallory.crt", "--key", "mallory.key"];
    assert!(
        curl(&env, addr, &mallory).status.success(),
        "not revoked yet"
    );
    write(env.path(), "clients.crl", revoked);
    let reload = Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", &g.admin_url("/reload")])
        .output()
        .expect("curl");
    assert!(reload.status.success(), "{}", output_text(&reload));
    assert!(!curl(&env, addr, &mallory).status.success(), "revoked now");
}
