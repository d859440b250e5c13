//! Upstreams with a self-signed certificate, as appliance services present them
//! (`openssl req -x509`, which marks the certificate as a CA): trusted when that very
//! certificate is in `upstream_ca_file`, name still checked, or by the SHA-256 of its key
//! in `upstream_pin_sha256`; every refusal logged as a sentence that says what to do.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gatehouse_tests::temp_dir;
use gatehouse_tests::upstream::{TlsUpstreamSpec, https_upstream};
use support::deploy::{Env, ListenerToml, WAIT};
use support::process::Gatehouse;

/// `openssl req -x509` in `dir`: a self-signed certificate for `appliance.internal` and
/// 127.0.0.1, and its key; their paths.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", "/CN=appliance.internal"])
        .args([
            "-addext",
            "subjectAltName=DNS:appliance.internal,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl req");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// The key pin of a certificate, as the docs tell operators to compute it.
fn pin_of(cert: &Path) -> String {
    let pipeline = format!(
        "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
        cert.display()
    );
    let out = Command::new("sh")
        .args(["-c", &pipeline])
        .stdin(Stdio::null())
        .output()
        .expect("run the pin pipeline");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn upstream(cert: &Path, key: &Path) -> SocketAddr {
    https_upstream(
        "appliance",
        &TlsUpstreamSpec {
            chain_pem: std::fs::read_to_string(cert).unwrap(),
            key_pem: std::fs::read_to_string(key).unwrap(),
            client_ca: None,
        },
    )
}

/// Starts Gatehouse in front of `addr` with the `upstream_*` lines; GET / as curl does:
/// body and status.
fn start(env: &Env, addr: SocketAddr, lines: &str) -> (Gatehouse, String, String) {
    let listener = ListenerToml::http(addr)
        .certificates(&["portal"])
        .upstream(&format!("https://{addr}"))
        .set(lines);
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let out = env.curl(g.addr("web"), "portal.test", "/", &["-w", "\n%{http_code}"]);
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = all.rsplit_once('\n').unwrap_or((&all, ""));
    (g, body.to_owned(), code.to_owned())
}

#[test]
fn a_self_signed_certificate_in_upstream_ca_file_is_trusted_as_presented_with_its_name() {
    let dir = temp_dir();
    let (cert, key) = self_signed(dir.path(), "appliance");
    let addr = upstream(&cert, &key);
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let ca = format!("upstream_ca_file = \"{}\"", cert.display());
    let (_g, body, code) = start(&env, addr, &ca);
    assert_eq!(code, "200", "the very certificate is trusted: {body}");
    assert!(body.contains("upstream=appliance"), "{body}");

    // The name is still checked: the certificate is not for other.internal.
    let (g, body, code) = start(
        &env,
        addr,
        &format!("{ca}\nupstream_server_name = \"other.internal\""),
    );
    assert_eq!(code, "502", "{body}");
    assert!(
        g.wait_for_log(
            |l| l.contains("is for appliance.internal") && l.contains("expected other.internal"),
            WAIT
        )
        .is_some(),
        "the log names both: {}",
        g.log_text()
    );

    // Another self-signed certificate in the file: refused, with what to do.
    let (other, _) = self_signed(dir.path(), "other");
    let (g, _, code) = start(
        &env,
        addr,
        &format!("upstream_ca_file = \"{}\"", other.display()),
    );
    assert_eq!(code, "502");
    assert!(
        g.wait_for_log(
            |l| l.contains("upstream_ca_file") && l.contains("upstream_pin_sha256"),
            WAIT
        )
        .is_some(),
        "{}",
        g.log_text()
    );
}

#[test]
fn an_upstream_is_trusted_by_the_sha256_of_its_key() {
    let dir = temp_dir();
    let (cert, key) = self_signed(dir.path(), "appliance");
    let (other, _) = self_signed(dir.path(), "other");
    let addr = upstream(&cert, &key);
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let (_g, body, code) = start(
        &env,
        addr,
        &format!("upstream_pin_sha256 = [\"{}\"]", pin_of(&cert)),
    );
    assert_eq!(code, "200", "the pinned key is trusted: {body}");

    let (g, _, code) = start(
        &env,
        addr,
        &format!("upstream_pin_sha256 = [\"{}\"]", pin_of(&other)),
    );
    assert_eq!(code, "502");
    let presented = pin_of(&cert);
    assert!(
        g.wait_for_log(
            |l| l.contains(&format!("sha256//{presented}"))
                && l.contains("upstream_pin_sha256 does not list"),
            WAIT
        )
        .is_some(),
        "the log gives the key it got: {}",
        g.log_text()
    );
}
