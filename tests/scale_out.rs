//! Many replicas: a TLS session taken from one instance resumes on another that shares its
//! `session_ticket_key_file`, as `openssl s_client` sees it.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::write;
use support::chores::s;
use support::deploy::{Env, ListenerToml};
use support::process::Gatehouse;
use support::tools::{output_text, run_tool};

/// One `openssl s_client` connection to `addr` that sends a request and reads the answer;
/// `session` is where the session is written (`-sess_out`) or read from (`-sess_in`).
/// Returns what s_client printed.
fn s_client(env: &Env, addr: SocketAddr, session: (&str, &Path)) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "portal.test", "-ign_eof", "-CAfile"])
        .arg(env.path().join("root.pem"))
        .arg(session.0)
        .arg(session.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    use std::io::Write;
    let request = b"GET / HTTP/1.1\r\nHost: portal.test\r\nConnection: close\r\n\r\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request)
        .expect("request");
    output_text(&child.wait_with_output().expect("s_client"))
}

/// Two instances of the same deployment; `keys` is the listener's ticket key file, if any.
fn two_replicas(env: &Env, keys: Option<&str>) -> (Gatehouse, Gatehouse) {
    let mut listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    if let Some(keys) = keys {
        listener = listener.set(&format!("session_ticket_key_file = \"{keys}\""));
    }
    let config = env.config(&listener.to_toml());
    (Gatehouse::start(&config), Gatehouse::start(&config))
}

/// Whether a session taken on `a` resumes on `b`.
fn resumes_across(env: &Env, a: &Gatehouse, b: &Gatehouse, name: &str) -> bool {
    let session = env.path().join(format!("{name}.session"));
    let first = s_client(env, a.addr("web"), ("-sess_out", &session));
    assert!(first.contains("HTTP/1.1 200"), "{first}");
    assert!(session.exists(), "s_client kept the session: {first}");
    let second = s_client(env, b.addr("web"), ("-sess_in", &session));
    assert!(second.contains("HTTP/1.1 200"), "{second}");
    second.contains("Reused, TLSv1.3")
}

#[test]
fn a_session_from_one_replica_resumes_on_another_with_the_same_ticket_keys() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let key = Command::new("openssl")
        .args(["rand", "80"])
        .output()
        .expect("openssl rand");
    let keys = write(env.path(), "tickets.key", &key.stdout);
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let (a, b) = two_replicas(&env, Some("tickets.key"));
    assert!(
        resumes_across(&env, &a, &b, "shared"),
        "resumed on the other replica"
    );

    // A new key in front, read again at the reload: sessions sealed with the previous key
    // still resume, new ones are sealed with the new key.
    let before = env.path().join("before-rotation.session");
    let _ = s_client(&env, a.addr("web"), ("-sess_out", &before));
    let newer = Command::new("openssl")
        .args(["rand", "80"])
        .output()
        .expect("rand");
    write(
        env.path(),
        "tickets.key",
        [newer.stdout.as_slice(), key.stdout.as_slice()].concat(),
    );
    reload(&a);
    reload(&b);
    let after = s_client(&env, b.addr("web"), ("-sess_in", &before));
    assert!(
        after.contains("Reused, TLSv1.3"),
        "the previous key still opens: {after}"
    );
    // The previous key retired, on b only: a's new sessions (new key) still resume there,
    // sessions of the previous key no longer do.
    write(env.path(), "tickets.key", &newer.stdout);
    reload(&b);
    assert!(
        resumes_across(&env, &a, &b, "rotated"),
        "sealed with the new key"
    );
    let retired = s_client(&env, b.addr("web"), ("-sess_in", &before));
    assert!(
        !retired.contains("Reused"),
        "a retired key opens nothing: {retired}"
    );
}

/// `POST /reload`, which answers once the reload is done.
fn reload(g: &Gatehouse) {
    let out = Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", &g.admin_url("/reload")])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_shared_keys_each_replica_has_its_own() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let (a, b) = two_replicas(&env, None);
    assert!(
        !resumes_across(&env, &a, &b, "own"),
        "keys are per instance without session_ticket_key_file"
    );
    assert!(
        resumes_across(&env, &a, &a, "same"),
        "but resume on the same one"
    );
}

#[test]
fn a_key_file_of_the_wrong_size_stops_the_start_with_the_fix() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    write(
        env.path(),
        "tickets.key",
        "a password, not 80 random bytes\n",
    );
    let listener = ListenerToml::http(http_upstream("portal"))
        .certificates(&["portal"])
        .set("session_ticket_key_file = \"tickets.key\"");
    let out =
        support::process::gatehouse(&["check", "--config", &s(&env.config(&listener.to_toml()))]);
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(text.contains("openssl rand 80"), "{text}");
}

#[test]
fn the_kubernetes_manifests_pass_the_schemas_and_fit_together() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let manifests: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    let validate = run_tool(
        Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .args(&manifests),
        "pip install kubernetes-validate",
    );
    let Some(validate) = validate else {
        return;
    };
    assert!(validate.status.success(), "{}", output_text(&validate));

    let env = Env::new();
    let extracted = env.path().join("from-configmap.toml");
    let checker =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/kubernetes/check_manifests.py");
    let fit = Command::new("python3")
        .arg(&checker)
        .arg(&dir)
        .arg("--extract-config")
        .arg(&extracted)
        .output()
        .expect("python3");
    assert!(fit.status.success(), "{}", output_text(&fit));

    // The ConfigMap's configuration, with the pod's paths moved under a temp dir and the
    // files the Secrets would hold, passes `gatehouse check`.
    let root = env.path();
    let config = std::fs::read_to_string(&extracted)
        .expect("config")
        .replace("/etc/gatehouse/", &format!("{}/", root.display()))
        .replace(
            "/var/lib/gatehouse",
            &root.join("state").display().to_string(),
        );
    let leaf = env.pki.inter.leaf(&["portal.example.com"]);
    let certs = root.join("certs/portal");
    std::fs::create_dir_all(&certs).expect("mkdir");
    write(
        &certs,
        "tls.crt",
        format!("{}{}", leaf.cert_pem, env.pki.inter.cert_pem),
    );
    write(&certs, "tls.key", &leaf.key_pem);
    std::fs::create_dir_all(root.join("admin")).expect("mkdir");
    write(
        &root.join("admin"),
        "token",
        "0123456789abcdef0123456789abcdef",
    );
    std::fs::create_dir_all(root.join("tickets")).expect("mkdir");
    write(&root.join("tickets"), "tickets.key", [7u8; 80]);
    for secret in ["certs/portal/tls.key", "admin/token", "tickets/tickets.key"] {
        std::fs::set_permissions(
            root.join(secret),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
    }
    let config = write(root, "gatehouse.toml", config);
    let check = support::process::gatehouse(&["check", "--config", &s(&config)]);
    assert!(check.status.success(), "{}", output_text(&check));
}
