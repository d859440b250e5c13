//! The internal CA end to end: its name, organization and validity from the config, the
//! default certificate issued on first boot and reissued when the host is renamed or
//! readdressed, and `gatehouse check` before anything is issued.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::{serial_of, verify_chain, write};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use support::chores::*;
use support::deploy::{Env, ListenerToml, WAIT};
use support::process::Gatehouse;

#[test]
fn internal_ca_takes_its_name_organization_and_validity_from_the_config() {
    let mut env = Env::new();
    env.certificate_block("default", "issuer = \"internal\"\nnames = [\"box.test\"]");
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["default"]);
    let config = env.config_with(
        "[internal_ca]\ncommon_name = \"Acme Appliance CA\"\norganization = \"Acme\"\nvalidity_days = 1000\n",
        &listener.to_toml(),
    );
    let g = Gatehouse::start(&config);
    let ca_pem = ok(&["certs", "export-ca", "--config", &s(&config)]);
    drop(g);
    let ca = write(env.path(), "ca.pem", &ca_pem);
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-checkend"])
        .arg((999 * 86_400).to_string())
        .arg("-in")
        .arg(&ca)
        .output()
        .expect("openssl x509");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CN = Acme Appliance CA") && text.contains("O = Acme"),
        "{text}"
    );
    assert!(out.status.success(), "valid for 999 more days: {text}");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-checkend"])
        .arg((1001 * 86_400).to_string())
        .arg("-in")
        .arg(&ca)
        .output()
        .expect("openssl x509");
    assert!(
        !out.status.success(),
        "but not for 1001: validity_days = 1000"
    );
}

#[test]
fn internal_certificates_are_issued_on_first_boot_and_reissued_when_the_host_is_renamed() {
    let env = Env::new();
    let mut env = env;
    env.certificate_block("default", "issuer = \"internal\"");
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["default"]);
    let config = env.config(&listener.to_toml());
    let c = s(&config);
    let start = |host: &str, address: &str| {
        Gatehouse::start_env(
            &["run", "--config", &c],
            &[
                ("GATEHOUSE_HOSTNAME", host),
                ("GATEHOUSE_HOST_ADDRESSES", address),
            ],
        )
    };

    let g = start("alpha.test", "192.0.2.10");
    let first = served(&g, "alpha.test");
    let ca_pem = ok(&["certs", "export-ca", "--config", &c]);
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .expect("export-ca prints a PEM certificate");
    verify_chain(&first, &ca, "alpha.test")
        .expect("the default certificate verifies to the exported CA");
    verify_chain(&first, &ca, "192.0.2.10").expect("and covers the host's address");
    drop(g);

    let g = start("alpha.test", "192.0.2.10");
    assert_eq!(
        serial_of(&served(&g, "alpha.test")[0]),
        serial_of(&first[0]),
        "a restart keeps a valid certificate"
    );
    drop(g);

    // The address changed (XClarity reissues on an IP change): reissued, old one backed up.
    let g = start("alpha.test", "192.0.2.11");
    let readdressed = served(&g, "alpha.test");
    assert_ne!(serial_of(&readdressed[0]), serial_of(&first[0]));
    verify_chain(&readdressed, &ca, "192.0.2.11").expect("covers the new address");
    let backups = ok(&["certs", "backups", "--config", &c, "--name", "default"]);
    assert!(
        backups.contains(&serial_of(&first[0])),
        "the replaced internal certificate is backed up: {backups}"
    );
    drop(g);

    let g = start("beta.test", "192.0.2.11");
    let renamed = served(&g, "beta.test");
    assert_ne!(
        serial_of(&renamed[0]),
        serial_of(&readdressed[0]),
        "renamed host: reissued"
    );
    verify_chain(&renamed, &ca, "beta.test").expect("by the same CA");
    assert!(
        g.wait_for_log(
            |l| l.contains("issued by the internal CA") && l.contains("names changed"),
            WAIT
        )
        .is_some(),
        "{}",
        g.log_text()
    );

    // Names set in the config and changed at runtime: SIGHUP reissues.
    env.remove_certificate("default");
    env.certificate_block("default", "issuer = \"internal\"\nnames = [\"gamma.test\"]");
    env.config(&listener.to_toml());
    g.signal("HUP");
    assert!(
        g.wait_for_log(|l| l.contains("certificate \"default\": updated"), WAIT)
            .is_some(),
        "{}",
        g.log_text()
    );
    verify_chain(&served(&g, "gamma.test"), &ca, "gamma.test").expect("reissued for the new name");
}

#[test]
fn check_passes_before_internal_certificates_are_issued_and_fails_on_a_bad_upstream_ca_file() {
    let mut env = Env::new();
    env.certificate_block(
        "default",
        "issuer = \"internal\"\nnames = [\"first-boot.test\"]",
    );
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["default"]);
    let config = env.config(&listener.to_toml());
    let out = ok(&["check", "--config", &s(&config)]);
    assert!(
        out.contains("will be issued by the internal CA at start"),
        "{out}"
    );
    assert!(!env.path().join("state").exists(), "check writes nothing");

    let upstream = http_upstream("portal");
    let bad = env.config(
        &listener
            .upstream(&format!("https://{upstream}"))
            .set("upstream_ca_file = \"missing-ca.pem\"")
            .to_toml(),
    );
    let out = refused(&["check", "--config", &s(&bad)]);
    assert!(out.contains("missing-ca.pem"), "{out}");
}
