//! The configuration checks, driven by config text as an operator writes it.

use std::path::{Path, PathBuf};

use certstore::Source;

use super::admin::DEFAULT_ADMIN_LISTEN;
use super::upstream::UpstreamProtocol;
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/gatehouse/gatehouse.toml"), text)
}

const GOOD: &str = r#"
    state_dir = "state"
    [[certificate]]
    name = "portal"
    cert = "certs/portal.crt"
    key = "/abs/portal.key"
    [[certificate]]
    name = "engine"
    pkcs12 = "engine.pfx"
    password_file = "engine.pass"
    [[listener]]
    name = "portal"
    bind = "127.0.0.1:8443"
    certificates = ["portal", "engine"]
    upstream = "http://127.0.0.1:8080"
    [[listener.route]]
    server_name = "Engine.Example.com"
    upstream = "http://127.0.0.1:8081"
"#;

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let c = parse(GOOD).expect("good config");
    assert_eq!(c.state_dir, PathBuf::from("/etc/gatehouse/state"));
    match &c.certificates[0].source {
        Source::Files { cert, key, .. } => {
            assert_eq!(cert, &PathBuf::from("/etc/gatehouse/certs/portal.crt"));
            assert_eq!(key, &PathBuf::from("/abs/portal.key"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.listeners[0].routes[0].server_name, "engine.example.com");
    assert_eq!(c.listeners[0].handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
}

#[test]
fn every_problem_is_reported_at_once_with_key_value_and_fix() {
    let err = parse(
        r#"
        [[certificate]]
        name = "portal"
        cert = "a.crt"
        [[listener]]
        name = "portal"
        bind = "443"
        protocol = "udp"
        certificates = ["engine"]
        upstream = "ftp://x"
        min_tls_version = "1.1"
    "#,
    )
    .expect_err("bad config");
    let msg = err.to_string();
    for expected in [
        "`cert` needs `key`",
        "bind = \"443\" is not an address",
        "protocol = \"udp\" is not supported",
        "certificate \"engine\" is not defined; define it in a [[certificate]] block or remove it from certificates",
        "upstream = \"ftp://x\": scheme \"ftp\" is not supported; use http:// or https:// (http listeners), tcp:// or tls:// (tcp listeners)",
        "min_tls_version = \"1.1\"",
    ] {
        assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
    }
}

#[test]
fn the_shipped_example_config_is_valid() {
    let c = Config::parse(
        Path::new("/etc/gatehouse/gatehouse.toml"),
        include_str!("../../../deploy/gatehouse.toml"),
    )
    .expect("deploy/gatehouse.toml must stay valid");
    assert_eq!(c.listeners.len(), 2);
}

#[test]
fn admin_defaults_to_loopback_and_refuses_other_binds_without_a_token() {
    let c = parse(GOOD).expect("good config");
    assert_eq!(
        c.admin.as_ref().map(|a| a.listen.to_string()).as_deref(),
        Some(DEFAULT_ADMIN_LISTEN)
    );
    let err = parse(&format!("{GOOD}\n[admin]\nlisten = \"0.0.0.0:9900\"\n"))
        .expect_err("non-loopback admin");
    assert!(err.to_string().contains("token_file"), "{err}");
    let c = parse(&format!(
        "{GOOD}\n[admin]\nlisten = \"0.0.0.0:9900\"\ntoken_file = \"t\"\n"
    ))
    .expect("with a token");
    assert_eq!(
        c.admin.unwrap().token_file,
        Some(PathBuf::from("/etc/gatehouse/t"))
    );
    assert!(
        parse(&format!("{GOOD}\n[admin]\nenabled = false\n"))
            .unwrap()
            .admin
            .is_none()
    );
}

#[test]
fn upstream_tls_keys_are_checked() {
    let tls = GOOD.replace("http://127.0.0.1:8080", "https://10.0.0.5:8443")
        .replace("certificates = [\"portal\", \"engine\"]", "certificates = [\"portal\", \"engine\"]\nupstream_server_name = \"engine.internal\"\nupstream_protocol = \"http2\"\nupstream_ca_file = \"ca.pem\"");
    let c = parse(&tls).expect("TLS upstream options");
    let o = &c.listeners[0].upstream.options;
    assert_eq!(o.server_name.as_deref(), Some("engine.internal"));
    assert_eq!(o.protocol, UpstreamProtocol::Http2);
    assert_eq!(o.ca_file, Some(PathBuf::from("/etc/gatehouse/ca.pem")));

    let plain = GOOD.replace(
        "certificates = [\"portal\", \"engine\"]",
        "certificates = [\"portal\", \"engine\"]\nupstream_insecure_skip_verify = true\nupstream_client_cert = \"c.pem\"",
    );
    let msg = parse(&plain)
        .expect_err("TLS keys on a plain upstream")
        .to_string();
    assert!(
        msg.contains("upstream_insecure_skip_verify applies to TLS upstreams"),
        "{msg}"
    );
    assert!(
        msg.contains("upstream_client_cert and upstream_client_key go together"),
        "{msg}"
    );
}

#[test]
fn workers_default_to_one_per_core_and_zero_is_refused() {
    assert_eq!(parse(GOOD).expect("good").workers, default_workers());
    let two = format!("workers = 2\n{GOOD}");
    assert_eq!(parse(&two).expect("two workers").workers, 2);
    let err = parse(&format!("workers = 0\n{GOOD}")).expect_err("no worker");
    assert!(
        err.to_string()
            .contains("workers = 0 is out of range; give 1 to 1024"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let err = parse(&GOOD.replace("state_dir", "stat_dir")).expect_err("typo");
    assert!(err.to_string().contains("stat_dir"), "{err}");
}

#[test]
fn upstream_scheme_must_fit_the_protocol() {
    let err = parse(&GOOD.replace(
        "bind = \"127.0.0.1:8443\"",
        "bind = \"127.0.0.1:8443\"\nprotocol = \"tcp\"",
    ))
    .expect_err("http upstream on tcp listener");
    assert!(
        err.to_string().contains("does not fit protocol \"tcp\""),
        "{err}"
    );
}

#[test]
fn internal_ca_defaults_and_its_validity_is_bounded() {
    let c = parse(GOOD).expect("good config");
    assert_eq!(c.internal_ca.organization, "Gatehouse");
    assert_eq!(c.internal_ca.validity_days, certstore::CA_LIFETIME_DAYS);
    assert!(
        c.internal_ca
            .common_name
            .starts_with("Gatehouse Internal CA")
    );
    let err = parse(&format!("{GOOD}\n[internal_ca]\nvalidity_days = 0\n")).expect_err("zero");
    assert!(
        err.to_string()
            .contains("[internal_ca] validity_days = 0 is out of range"),
        "{err}"
    );
}
