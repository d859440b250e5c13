//! TLS upstreams on loopback with certificates from a private test CA: verified by
//! default, trust files operators control, the name to verify, mutual TLS, the explicit
//! opt-out, TCP to `tls://`, and trust changes applied on SIGHUP.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::Command;

use gatehouse_tests::upstream::{TlsUpstreamSpec, https_upstream, rt, tls_echo_after_eof};
use gatehouse_tests::{Ca, LeafSpec, Pki, connect, write};
use support::deploy::{Env, WAIT};
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A private PKI for the upstreams (distinct from the one the proxy serves with).
struct UpstreamPki {
    pki: Pki,
}

impl UpstreamPki {
    fn new() -> Self {
        Self { pki: Pki::new() }
    }

    fn spec(&self, leaf: gatehouse_tests::Leaf, client_ca: Option<&Ca>) -> TlsUpstreamSpec {
        TlsUpstreamSpec {
            chain_pem: format!("{}{}", leaf.cert_pem, self.pki.inter.cert_pem),
            key_pem: leaf.key_pem,
            client_ca: client_ca.map(|c| c.cert.clone()),
        }
    }

    /// An HTTPS upstream with a certificate for `names`.
    fn https(&self, names: &[&str]) -> SocketAddr {
        https_upstream("secure", &self.spec(self.pki.inter.leaf(names), None))
    }
}

fn env_with_portal() -> Env {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    env
}

fn listener(upstream: &str, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\ncertificates = [\"portal\"]\nupstream = \"{upstream}\"\n{extra}\n"
    )
}

fn get(env: &Env, g: &Gatehouse) -> (String, String) {
    let out = env.curl(g.addr("web"), "portal.test", "/", &["-w", "\n%{http_code}"]);
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = all.rsplit_once('\n').unwrap_or((&all, ""));
    (body.to_owned(), code.to_owned())
}

fn metrics(g: &Gatehouse) -> String {
    let out = Command::new("curl")
        .args(["-sS", &g.admin_url("/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn verified_with_ca_file_and_refused_without_it() {
    let up = UpstreamPki::new();
    let addr = up.https(&["127.0.0.1"]);
    let env = env_with_portal();
    let root = write(
        env.path(),
        "upstream-root.pem",
        format!("{}\r\n", up.pki.root.cert_pem.replace('\n', "\r\n")),
    );

    let config = env.config_with(
        &format!("[upstream_tls]\nca_file = \"{}\"\n", root.display()),
        &listener(&format!("https://{addr}"), ""),
    );
    let g = Gatehouse::start(&config);
    let (body, code) = get(&env, &g);
    assert_eq!(
        code, "200",
        "verified with ca_file (CRLF tolerated): {body}"
    );
    assert!(body.contains("upstream=secure"), "{body}");
    drop(g);

    let config = env.config(&listener(&format!("https://{addr}"), ""));
    let g = Gatehouse::start(&config);
    assert_refused_as_untrusted(&env, &g);
}

/// The upstream's certificate does not verify: the client gets 502 saying so, the log says
/// why, and the `tls_verify` error is counted.
fn assert_refused_as_untrusted(env: &Env, g: &Gatehouse) {
    let (body, code) = get(env, g);
    assert_eq!(
        code, "502",
        "public roots do not know the private CA: {body}"
    );
    assert!(
        body.contains("certificate is not trusted"),
        "the client is told why: {body}"
    );
    assert!(
        g.wait_for_log(
            |l| l.contains("issued by a CA Gatehouse does not trust"),
            WAIT
        )
        .is_some(),
        "the log says why:\n{}",
        g.log_text()
    );
    assert!(
        metrics(g)
            .contains(r#"gatehouse_upstream_errors_total{kind="tls_verify",listener="web"} 1"#),
        "{}",
        metrics(g)
    );
}

#[test]
fn an_untrusted_upstream_is_refused_over_http1_keep_alive_connections_too() {
    // `upstream_protocol = "http1"` goes through Gatehouse's own HTTP/1.1 pool.
    let up = UpstreamPki::new();
    let addr = up.https(&["127.0.0.1"]);
    let env = env_with_portal();
    let g = Gatehouse::start(&env.config(&listener(
        &format!("https://{addr}"),
        "upstream_protocol = \"http1\"",
    )));
    assert_refused_as_untrusted(&env, &g);
}

#[test]
fn expired_upstream_certificate_is_refused() {
    let up = UpstreamPki::new();
    let leaf = up
        .pki
        .inter
        .leaf_with(LeafSpec::new(&["127.0.0.1"]).validity(-30, -1));
    let addr = https_upstream("secure", &up.spec(leaf, None));
    let env = env_with_portal();
    let root = write(env.path(), "upstream-root.pem", &up.pki.root.cert_pem);
    let config = env.config(&listener(
        &format!("https://{addr}"),
        &format!("upstream_ca_file = \"{}\"", root.display()),
    ));
    let g = Gatehouse::start(&config);
    assert_eq!(get(&env, &g).1, "502");
    assert!(
        g.wait_for_log(|l| l.contains("certificate has expired: renew it"), WAIT)
            .is_some(),
        "{}",
        g.log_text()
    );
}

#[test]
fn name_mismatch_is_refused_until_upstream_server_name_says_which_name_to_verify() {
    let up = UpstreamPki::new();
    let addr = up.https(&["engine.internal"]);
    let env = env_with_portal();
    let root = write(env.path(), "upstream-root.pem", &up.pki.root.cert_pem);
    let ca = format!("upstream_ca_file = \"{}\"", root.display());
    let g = Gatehouse::start(&env.config(&listener(&format!("https://{addr}"), &ca)));
    assert_eq!(get(&env, &g).1, "502");
    assert!(
        g.wait_for_log(
            |l| l.contains("is for engine.internal but Gatehouse expected 127.0.0.1")
                && l.contains("upstream_server_name"),
            WAIT
        )
        .is_some(),
        "{}",
        g.log_text()
    );
    drop(g);
    let g = Gatehouse::start(&env.config(&listener(
        &format!("https://{addr}"),
        &format!("{ca}\nupstream_server_name = \"engine.internal\""),
    )));
    let (body, code) = get(&env, &g);
    assert_eq!(code, "200", "{body}");
}

#[test]
fn insecure_skip_verify_is_explicit_warned_and_exported() {
    let up = UpstreamPki::new();
    let addr = up.https(&["somewhere.else"]);
    let env = env_with_portal();
    let g = Gatehouse::start(&env.config(&listener(
        &format!("https://{addr}"),
        "upstream_insecure_skip_verify = true",
    )));
    let (body, code) = get(&env, &g);
    assert_eq!(code, "200", "{body}");
    assert!(
        g.wait_for_log(
            |l| l.contains("WARN") && l.contains("is not verified"),
            WAIT
        )
        .is_some(),
        "{}",
        g.log_text()
    );
    let m = metrics(&g);
    assert!(
        m.contains(&format!(
            r#"gatehouse_upstream_insecure{{listener="web",upstream="https://{addr}"}} 1"#
        )),
        "{m}"
    );
    // And on every reload.
    let before = g.log_lines().len();
    g.signal("HUP");
    assert!(
        g.wait_for_log(
            |l| l.contains("is not verified") && !g.log_lines()[..before].contains(&l.to_owned()),
            WAIT
        )
        .is_some(),
        "warned again on reload:\n{}",
        g.log_text()
    );
}

#[test]
fn mutual_tls_presents_the_client_certificate() {
    let up = UpstreamPki::new();
    let client_ca = Ca::root("Upstream Client CA");
    let addr = https_upstream(
        "secure",
        &up.spec(up.pki.inter.leaf(&["127.0.0.1"]), Some(&client_ca)),
    );
    let env = env_with_portal();
    let root = write(env.path(), "upstream-root.pem", &up.pki.root.cert_pem);
    let client = client_ca.leaf_with(LeafSpec {
        common_name: Some("gatehouse-client"),
        client_auth: true,
        ..LeafSpec::new(&[])
    });
    write(env.path(), "client.crt", &client.cert_pem);
    write(env.path(), "client.key", &client.key_pem);
    let ca = format!("upstream_ca_file = \"{}\"", root.display());

    let g = Gatehouse::start(&env.config(&listener(&format!("https://{addr}"), &ca)));
    assert_eq!(
        get(&env, &g).1,
        "502",
        "the upstream requires a client certificate"
    );
    drop(g);

    let g = Gatehouse::start(&env.config(&listener(
        &format!("https://{addr}"),
        &format!(
            "{ca}\nupstream_client_cert = \"client.crt\"\nupstream_client_key = \"client.key\""
        ),
    )));
    let (body, code) = get(&env, &g);
    assert_eq!(code, "200", "{body}");
    assert!(
        body.contains("x-test-tls-client: CN=gatehouse-client"),
        "{body}"
    );
}

#[test]
fn upstream_protocol_http2_speaks_h2_to_the_upstream() {
    let up = UpstreamPki::new();
    let addr = up.https(&["127.0.0.1"]);
    let env = env_with_portal();
    let root = write(env.path(), "upstream-root.pem", &up.pki.root.cert_pem);
    let ca = format!("upstream_ca_file = \"{}\"", root.display());
    for (protocol, version) in [
        ("http2", "HTTP/2.0"),
        ("http1", "HTTP/1.1"),
        ("auto", "HTTP/2.0"),
    ] {
        let g = Gatehouse::start(&env.config(&listener(
            &format!("https://{addr}"),
            &format!("{ca}\nupstream_protocol = \"{protocol}\""),
        )));
        let (body, code) = get(&env, &g);
        assert_eq!(code, "200", "{body}");
        assert!(
            body.contains(&format!("version={version}")),
            "{protocol}: {body}"
        );
    }
}

#[test]
fn tcp_listener_to_a_tls_upstream() {
    let up = UpstreamPki::new();
    let addr = tls_echo_after_eof(&up.spec(up.pki.inter.leaf(&["collector.internal"]), None));
    let mut env = Env::new();
    env.certificate("collector", &["collector.test"]);
    let root = write(env.path(), "upstream-root.pem", &up.pki.root.cert_pem);
    let config = env.config(&format!(
        "[[listener]]\nname = \"collector\"\nbind = \"127.0.0.1:0\"\nprotocol = \"tcp\"\ncertificates = [\"collector\"]\nupstream = \"tls://{addr}\"\nupstream_ca_file = \"{}\"\nupstream_server_name = \"collector.internal\"\n",
        root.display()
    ));
    let g = Gatehouse::start(&config);
    rt().block_on(async {
        let (mut tls, _) = connect(g.addr("collector"), Some("collector.test"))
            .await
            .expect("handshake");
        tls.write_all(b"over two TLS hops").await.expect("write");
        tls.shutdown().await.expect("half-close");
        let mut reply = Vec::new();
        let _ =
            tokio::time::timeout(gatehouse_tests::STEP_TIMEOUT, tls.read_to_end(&mut reply)).await;
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "got 17 bytes: over two TLS hops"
        );
    });
}

#[test]
fn replacing_ca_file_and_sighup_changes_the_outcome_without_a_restart() {
    let up = UpstreamPki::new();
    let addr = up.https(&["127.0.0.1"]);
    let env = env_with_portal();
    let wrong = Pki::new();
    let ca_path = write(env.path(), "upstream-ca.pem", &wrong.root.cert_pem);
    let config = env.config_with(
        &format!("[upstream_tls]\nca_file = \"{}\"\n", ca_path.display()),
        &listener(&format!("https://{addr}"), ""),
    );
    let g = Gatehouse::start(&config);
    assert_eq!(get(&env, &g).1, "502", "the wrong CA");
    write(env.path(), "upstream-ca.pem", &up.pki.root.cert_pem);
    g.signal("HUP");
    assert!(
        g.wait_for_log(|l| l.contains("SIGHUP: reloading"), WAIT)
            .is_some()
    );
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (body, code) = get(&env, &g);
        if code == "200" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after SIGHUP the new CA is trusted: {code} {body}\n{}",
            g.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
