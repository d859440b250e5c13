//! `gatehouse certs install` never makes the served chain less complete: a renewal sent
//! without its intermediate keeps the current chain, and a certificate nothing known
//! issued is refused unless the operator says otherwise, loudly. Driven as an operator
//! would: the real binary, certificates from the `openssl` CLI and rcgen, and
//! `openssl s_client -showcerts` to see what is served.

#[path = "support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use gatehouse_tests::{Ca, openssl_fixtures, serial_of, write};
use support::chores::{deployment, ok, refused, s, served, snapshot};
use support::process::Gatehouse;

/// `chain_complete` of certificate `name` in the admin API's `/certs`.
fn chain_complete(g: &Gatehouse, name: &str) -> bool {
    let out = Command::new("curl")
        .args(["-sS", &g.admin_url("/certs")])
        .output()
        .expect("curl");
    let certs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    certs
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .and_then(|c| c["chain_complete"].as_bool())
        .unwrap_or_else(|| panic!("/certs shows {name}: {certs}"))
}

/// The certificates `openssl s_client -showcerts` sees for `sni`, as PEM blocks.
fn showcerts(g: &Gatehouse, sni: &str) -> Vec<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-showcerts", "-connect"])
        .arg(g.addr("web").to_string())
        .args(["-servername", sni])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|c| {
            c.split("-----END CERTIFICATE-----")
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[test]
fn a_renewal_without_its_intermediate_keeps_the_current_chain() {
    let (env, g, config) = deployment();
    assert_eq!(
        showcerts(&g, "portal.test").len(),
        2,
        "leaf and intermediate"
    );
    // What a CA often sends for a renewal: the new certificate alone, for a new key.
    let renewed = env.pki.inter.leaf(&["portal.test", "engine.test"]);
    let cert = write(env.path(), "renewed.crt", &renewed.cert_pem);
    let key = write(env.path(), "renewed.key", &renewed.key_pem);
    let out = ok(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&cert),
        "--key",
        &s(&key),
    ]);
    let chain_file = env.path().join("portal.chain.pem");
    assert!(
        out.contains(&format!("completed from {}", chain_file.display())),
        "install says where the intermediate came from: {out}"
    );
    let chain = std::fs::read_to_string(env.path().join("portal.chain.pem")).unwrap();
    assert!(
        chain.contains(env.pki.inter.cert_pem.trim()),
        "the chain file still holds the intermediate: {chain}"
    );
    let served = served(&g, "portal.test");
    assert_eq!(serial_of(&served[0]), renewed.serial());
    assert_eq!(
        showcerts(&g, "portal.test").len(),
        2,
        "the renewed leaf is served with its intermediate"
    );
    assert!(chain_complete(&g, "portal"));
}

#[test]
fn a_certificate_nothing_known_issued_is_refused_and_installed_only_when_allowed() {
    let (env, g, config) = deployment();
    // A leaf from the openssl CLI's CA, without that CA's intermediate.
    let fx = openssl_fixtures();
    let before = snapshot(env.path());
    let out = refused(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&fx.join("leaf-ecp256.crt")),
        "--key",
        &s(&fx.join("leaf-ecp256.key")),
        "--allow-name-change",
    ]);
    for expected in ["install refused", "was issued by", "--chain", "untouched"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert_eq!(before, snapshot(env.path()), "a refusal touches no file");
    assert_eq!(showcerts(&g, "portal.test").len(), 2);

    // Another CA's leaf for the same names, installed on purpose without its chain.
    let other = Ca::root("Other Root").intermediate("Other Intermediate");
    let leaf = other.leaf(&["portal.test", "engine.test"]);
    let cert = write(env.path(), "other.crt", &leaf.cert_pem);
    let key = write(env.path(), "other.key", &leaf.key_pem);
    let args = [
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&cert),
        "--key",
        &s(&key),
    ];
    let out = refused(&args);
    assert!(
        out.contains("Other Intermediate"),
        "names the issuer: {out}"
    );
    let out = ok(&[&args[..], &["--allow-incomplete-chain"]].concat());
    assert!(out.contains("WARNING: --allow-incomplete-chain"), "{out}");
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), leaf.serial());
    assert_eq!(
        showcerts(&g, "portal.test").len(),
        1,
        "served alone, as the operator asked"
    );
    assert!(
        !chain_complete(&g, "portal"),
        "/certs says the chain is incomplete"
    );
}

#[test]
fn a_pfx_given_as_cert_is_pointed_to_pkcs12() {
    let (env, _g, config) = deployment();
    let pfx = openssl_fixtures().join("leaf-ecp256.p12");
    let before = snapshot(env.path());
    let out = refused(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&pfx),
    ]);
    assert!(
        out.contains("is a PKCS#12/PFX file")
            && out.contains(&format!("--pkcs12 {}", pfx.display()))
            && out.contains("--password-file"),
        "{out}"
    );
    assert_eq!(before, snapshot(env.path()));
}

#[test]
fn csr_names_the_whole_install_command_and_writes_the_subject_in_the_usual_order() {
    let dir = gatehouse_tests::temp_dir();
    let key = dir.path().join("portal.key");
    let csr = dir.path().join("portal.csr");
    let out = ok(&[
        "certs",
        "csr",
        "--common-name",
        "portal.example.com",
        "--country",
        "DE",
        "--state",
        "Bavaria",
        "--locality",
        "Munich",
        "--organization",
        "Example",
        "--org-unit",
        "IT",
        "--key-out",
        &s(&key),
        "--csr-out",
        &s(&csr),
    ]);
    let then = out
        .lines()
        .find(|l| l.starts_with("then:"))
        .unwrap_or_else(|| panic!("a then: line: {out}"));
    assert!(
        then.contains(&format!("--key {}", key.display())),
        "the install command names the key just made: {then}"
    );
    let subject = Command::new("openssl")
        .args(["req", "-noout", "-subject", "-in"])
        .arg(&csr)
        .output()
        .expect("openssl req");
    let subject = String::from_utf8_lossy(&subject.stdout);
    assert!(
        subject.contains(
            "C = DE, ST = Bavaria, L = Munich, O = Example, OU = IT, CN = portal.example.com"
        ),
        "C, ST, L, O, OU, CN: {subject}"
    );
}

#[test]
fn an_intermediate_added_to_the_pool_completes_chains_sent_without_it() {
    let (env, g, config) = deployment();
    let fx = openssl_fixtures();
    let leaf = fx.join("leaf-ecp256.crt");
    let (config, leaf_s, key) = (s(&config), s(&leaf), s(&fx.join("leaf-ecp256.key")));
    let install_leaf = |extra: &[&str]| -> String {
        let args = [
            "certs",
            "install",
            "--config",
            config.as_str(),
            "--name",
            "portal",
            "--cert",
            leaf_s.as_str(),
            "--key",
            key.as_str(),
            "--allow-name-change",
        ];
        ok(&[&args[..], extra].concat())
    };
    // The operator installs a leaf without its chain, on purpose: served alone.
    install_leaf(&["--allow-incomplete-chain"]);
    assert_eq!(showcerts(&g, "leaf.test").len(), 1);
    assert!(!chain_complete(&g, "portal"));

    let add = |file: &std::path::Path| -> Vec<String> {
        [
            "certs",
            "install",
            "--config",
            config.as_str(),
            "--intermediate",
            &s(file),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let add = |file: &std::path::Path, expect_ok: bool| {
        let args = add(file);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if expect_ok { ok(&args) } else { refused(&args) }
    };
    let before = snapshot(env.path());
    let out = add(&leaf, false);
    assert!(out.contains("is not a CA certificate"), "{out}");
    assert_eq!(before, snapshot(env.path()), "a refusal writes nothing");

    // The intermediate the CA sent, as DER from the openssl CLI.
    let out = add(&fx.join("inter.der"), true);
    assert!(
        out.contains("added intermediate \"CN=Gatehouse Test Intermediate"),
        "{out}"
    );
    assert!(out.contains("completes the chain of \"portal\""), "{out}");
    assert!(
        out.contains("completed from") && out.contains("intermediates"),
        "the reload report says where the intermediate came from: {out}"
    );
    assert_eq!(
        showcerts(&g, "leaf.test").len(),
        2,
        "the leaf is served with the intermediate from the pool"
    );
    assert!(
        chain_complete(&g, "portal"),
        "/certs: the chain is complete"
    );
    let again = add(&fx.join("inter.crt"), true);
    assert!(again.contains("already in the pool"), "{again}");

    // A renewal from that CA sent alone now installs without a flag, with its chain.
    let out = install_leaf(&[]);
    assert!(out.contains("completed from"), "{out}");
    let chain = std::fs::read_to_string(env.path().join("portal.chain.pem")).unwrap();
    assert_eq!(
        chain.matches("-----BEGIN CERTIFICATE-----").count(),
        1,
        "the chain file holds the intermediate now"
    );
}
