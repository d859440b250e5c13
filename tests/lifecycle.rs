//! The certificate chores end to end, typed as a user would: `certs csr` → sign with the
//! `openssl` CLI → `certs install` → the running proxy serves it; renewal with the same
//! key; PKCS#12; refusals that leave files untouched; a key `csr` will not overwrite.
//! Backups and restore, `inspect` and `list` are in `backups.rs`; the internal CA in
//! `internal_ca.rs`.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::{LeafSpec, fixture, serial_of, verify_chain, write};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use support::chores::*;
use support::deploy::{Env, ListenerToml, text};
use support::process::Gatehouse;

#[test]
fn csr_then_openssl_signs_then_install_serves_the_new_certificate_with_its_chain() {
    let (env, g, config) = deployment();
    let key = env.path().join("new.key");
    let csr = env.path().join("new.csr");
    let out = ok(&[
        "certs",
        "csr",
        "--key-type",
        "ecdsa-p256",
        "--common-name",
        "portal.test",
        "--san",
        "engine.test",
        "--organization",
        "Example Appliance",
        "--key-out",
        &s(&key),
        "--csr-out",
        &s(&csr),
    ]);
    assert!(out.contains("send this to your CA"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600,
        "new keys are 0600"
    );

    // The CA (the openssl-made test intermediate) signs it, copying the SANs.
    let signed = env.path().join("signed.crt");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&fixture("inter.crt")),
        "-CAkey",
        &s(&fixture("inter.key")),
        "-set_serial",
        "0x5eed0001",
        "-days",
        "90",
        "-copy_extensions",
        "copy",
        "-out",
        &s(&signed),
    ]);
    let out = ok(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&signed),
        "--chain",
        &s(&fixture("inter.crt")),
        "--key",
        &s(&key),
    ]);
    assert!(
        out.contains("backed up the current files") && out.contains("updated"),
        "{out}"
    );
    let chain = served(&g, "engine.test");
    assert_eq!(
        serial_of(&chain[0]),
        "5e:ed:00:01",
        "the running proxy serves the new certificate"
    );
    assert_eq!(chain.len(), 2, "with its intermediate");
    let root = CertificateDer::from_pem_file(fixture("root.crt")).expect("root");
    verify_chain(&chain, &root, "engine.test").expect("a browser trusting the CA accepts it");
    let mode = std::fs::metadata(env.path().join("portal.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the installed key is 0600");
}

#[test]
fn renewal_with_the_current_key_is_one_command_and_dry_run_writes_nothing() {
    let (env, g, config) = deployment();
    let current_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(env.path().join("portal.key")).unwrap())
            .unwrap();
    let renewed = env
        .pki
        .inter
        .leaf_with_key(LeafSpec::new(&["portal.test", "engine.test"]), current_key);
    let cert = write(
        env.path(),
        "renewed.crt",
        format!("{}{}", renewed.cert_pem, env.pki.inter.cert_pem),
    );
    let before = snapshot(env.path());
    let out = ok(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&cert),
        "--dry-run",
    ]);
    assert!(
        out.contains("before") && out.contains("after") && out.contains(&renewed.serial()),
        "{out}"
    );
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert_eq!(before, snapshot(env.path()), "--dry-run writes nothing");
    ok(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&cert),
    ]);
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), renewed.serial());
}

#[test]
fn pkcs12_installs_into_files_and_files_install_into_a_pkcs12_certificate() {
    // Configured with files; the CA sent a PFX.
    let mut env = Env::new();
    env.certificate("portal", &["leaf.test", "www.leaf.test"]);
    let upstream = http_upstream("portal");
    let config = env.config(
        &ListenerToml::http(upstream)
            .certificates(&["portal"])
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    ok(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--pkcs12",
        &s(&fixture("leaf-ecp256.p12")),
        "--password-file",
        &s(&fixture("password.txt")),
    ]);
    let fixture_serial =
        serial_of(&CertificateDer::from_pem_file(fixture("leaf-ecp256.crt")).unwrap());
    let chain = served(&g, "leaf.test");
    assert_eq!(serial_of(&chain[0]), fixture_serial);
    assert_eq!(chain.len(), 2);
    drop(g);

    // Configured with a PFX; install PEM files: what is written is a PFX again.
    let mut env = Env::new();
    env.issue("portal", &["leaf.test"]);
    std::fs::copy(fixture("leaf-rsa2048.p12"), env.path().join("portal.p12")).unwrap();
    std::fs::copy(fixture("password.txt"), env.path().join("portal.pass")).unwrap();
    env.certificate_block(
        "portal",
        "pkcs12 = \"portal.p12\"\npassword_file = \"portal.pass\"",
    );
    let config = env.config(
        &ListenerToml::http(http_upstream("portal"))
            .certificates(&["portal"])
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    ok(&[
        "certs",
        "install",
        "--config",
        &s(&config),
        "--name",
        "portal",
        "--cert",
        &s(&fixture("leaf-ecp256.crt")),
        "--key",
        &s(&fixture("leaf-ecp256.key")),
        "--chain",
        &s(&fixture("inter.crt")),
    ]);
    assert_eq!(serial_of(&served(&g, "leaf.test")[0]), fixture_serial);
    let p12 = std::fs::read(env.path().join("portal.p12")).unwrap();
    assert!(
        certstore::parse_pkcs12(Path::new("portal.p12"), &p12, "s3cret").is_ok(),
        "a PFX with the configured password"
    );
}

#[test]
fn install_refuses_bad_material_and_leaves_the_files_untouched() {
    let (mut env, g, config) = deployment();
    let before = snapshot(env.path());
    let old_serial = env.serials["portal"].clone();
    let expired = env
        .pki
        .inter
        .leaf_with(LeafSpec::new(&["portal.test", "engine.test"]).validity(-30, -1));
    let expired_crt = write(env.path(), "x-expired.crt", &expired.cert_pem);
    let expired_key = write(env.path(), "x-expired.key", &expired.key_pem);
    let narrow = env.pki.inter.leaf(&["portal.test"]);
    let narrow_crt = write(
        env.path(),
        "x-narrow.crt",
        format!("{}{}", narrow.cert_pem, env.pki.inter.cert_pem),
    );
    let narrow_key = write(env.path(), "x-narrow.key", &narrow.key_pem);
    let before: Vec<_> = before
        .into_iter()
        .chain(
            snapshot(env.path())
                .into_iter()
                .filter(|(p, _)| p.file_name().unwrap().to_string_lossy().starts_with("x-")),
        )
        .collect();
    let mut before = before;
    before.sort();

    let c = s(&config);
    let out = refused(&[
        "certs",
        "install",
        "--config",
        &c,
        "--name",
        "portal",
        "--cert",
        &s(&expired_crt),
        "--key",
        &s(&expired_key),
    ]);
    assert!(
        out.contains("expired") && out.contains("untouched"),
        "{out}"
    );
    let out = refused(&[
        "certs",
        "install",
        "--config",
        &c,
        "--name",
        "portal",
        "--cert",
        &s(&narrow_crt),
        "--key",
        &s(&fixture("mismatch.key")),
    ]);
    assert!(out.contains("matches the private key"), "{out}");
    let out = refused(&[
        "certs",
        "install",
        "--config",
        &c,
        "--name",
        "portal",
        "--cert",
        &s(&narrow_crt),
        "--key",
        &s(&narrow_key),
    ]);
    assert!(
        out.contains("engine.test") && out.contains("--allow-name-change"),
        "a renewal that drops a routed name: {out}"
    );
    let out = refused(&[
        "certs",
        "install",
        "--config",
        &c,
        "--name",
        "portal",
        "--pkcs12",
        &s(&fixture("leaf-ecp256.p12")),
        "--password-file",
        &s(&fixture("wrong-password.txt")),
    ]);
    assert!(out.contains("wrong password"), "{out}");
    assert_eq!(
        before,
        snapshot(env.path()),
        "refused installs leave every file as it was"
    );
    assert!(
        !env.path().join("state/backups").exists(),
        "and make no backup"
    );
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), old_serial);

    // Meant: --allow-name-change.
    ok(&[
        "certs",
        "install",
        "--config",
        &c,
        "--name",
        "portal",
        "--cert",
        &s(&narrow_crt),
        "--key",
        &s(&narrow_key),
        "--allow-name-change",
    ]);
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), narrow.serial());
    env.serials.clear();
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn csr_refuses_to_overwrite_a_key_unless_forced_and_then_keeps_the_old_one() {
    let env = Env::new();
    let key = env.path().join("k.pem");
    let csr = env.path().join("c.csr");
    let args = |force: bool| {
        let mut a = vec![
            "certs",
            "csr",
            "--key-type",
            "rsa-2048",
            "--common-name",
            "appliance.test",
            "--ip",
            "192.0.2.10",
        ];
        a.extend([
            "--key-out",
            key.to_str().unwrap(),
            "--csr-out",
            csr.to_str().unwrap(),
        ]);
        if force {
            a.push("--force");
        }
        a.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    ok(&as_refs(&args(false)));
    let first = std::fs::read(&key).unwrap();
    let out = refused(&as_refs(&args(false)));
    assert!(out.contains("--force"), "{out}");
    assert_eq!(
        first,
        std::fs::read(&key).unwrap(),
        "the existing key is untouched"
    );
    ok(&as_refs(&args(true)));
    assert_ne!(first, std::fs::read(&key).unwrap());
    let moved = std::fs::read_dir(env.path())
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("k.pem."));
    assert_eq!(
        std::fs::read(moved.expect("old key moved aside").path()).unwrap(),
        first
    );
    // The CSR carries the names: openssl reads it back.
    let out = Command::new("openssl")
        .args(["req", "-noout", "-text", "-in"])
        .arg(&csr)
        .output()
        .unwrap();
    let t = text(&out);
    assert!(
        t.contains("DNS:appliance.test") && t.contains("IP Address:192.0.2.10"),
        "{t}"
    );
}
