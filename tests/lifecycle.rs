//! The certificate chores end to end, typed as a user would: `certs csr` → sign with the
//! `openssl` CLI → `certs install` → the running proxy serves it; PKCS#12; refusals that
//! leave files untouched; backups and restore; the internal CA; `inspect` and `list`.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::{LeafSpec, openssl_fixtures, serial_of, verify_chain, write};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use support::chores::*;
use support::deploy::{Env, ListenerToml, WAIT, text};
use support::process::Gatehouse;

fn fx(name: &str) -> PathBuf {
    openssl_fixtures().join(name)
}

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
        &s(&fx("inter.crt")),
        "-CAkey",
        &s(&fx("inter.key")),
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
        &s(&fx("inter.crt")),
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
    let root = CertificateDer::from_pem_file(fx("root.crt")).expect("root");
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
        &s(&fx("leaf-ecp256.p12")),
        "--password-file",
        &s(&fx("password.txt")),
    ]);
    let fixture_serial = serial_of(&CertificateDer::from_pem_file(fx("leaf-ecp256.crt")).unwrap());
    let chain = served(&g, "leaf.test");
    assert_eq!(serial_of(&chain[0]), fixture_serial);
    assert_eq!(chain.len(), 2);
    drop(g);

    // Configured with a PFX; install PEM files: what is written is a PFX again.
    let mut env = Env::new();
    env.issue("portal", &["leaf.test"]);
    std::fs::copy(fx("leaf-rsa2048.p12"), env.path().join("portal.p12")).unwrap();
    std::fs::copy(fx("password.txt"), env.path().join("portal.pass")).unwrap();
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
        &s(&fx("leaf-ecp256.crt")),
        "--key",
        &s(&fx("leaf-ecp256.key")),
        "--chain",
        &s(&fx("inter.crt")),
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
        &s(&fx("mismatch.key")),
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
        &s(&fx("leaf-ecp256.p12")),
        "--password-file",
        &s(&fx("wrong-password.txt")),
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

#[test]
fn restore_brings_the_previous_certificate_back_and_can_itself_be_undone() {
    let (env, g, config) = deployment();
    let c = s(&config);
    let old_serial = env.serials["portal"].clone();
    let new = env.pki.inter.leaf(&["portal.test", "engine.test"]);
    let crt = write(
        env.path(),
        "n.crt",
        format!("{}{}", new.cert_pem, env.pki.inter.cert_pem),
    );
    let key = write(env.path(), "n.key", &new.key_pem);
    ok(&[
        "certs",
        "install",
        "--config",
        &c,
        "--name",
        "portal",
        "--cert",
        &s(&crt),
        "--key",
        &s(&key),
    ]);
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), new.serial());

    // A dry run shows the backup it would put back and changes nothing.
    let before = snapshot(env.path());
    let out = ok(&[
        "certs",
        "restore",
        "--config",
        &c,
        "--name",
        "portal",
        "--dry-run",
    ]);
    assert!(
        out.contains(&old_serial) && out.contains("dry run: nothing written"),
        "{out}"
    );
    assert_eq!(before, snapshot(env.path()), "--dry-run writes nothing");
    // Run from the config's directory with a relative --config, as an operator would.
    let out = text(&in_dir(
        env.path(),
        &[
            "certs",
            "restore",
            "--config",
            "gatehouse.toml",
            "--name",
            "portal",
        ],
    ));
    assert_eq!(
        serial_of(&served(&g, "portal.test")[0]),
        old_serial,
        "restore brings the previous serial back: {out}"
    );
    let undo = out
        .lines()
        .find_map(|l| l.strip_prefix("undo: gatehouse "))
        .unwrap_or_else(|| panic!("restore prints its undo command: {out}"));
    let undo: Vec<&str> = undo.split_whitespace().collect();
    let undo_id = undo.last().expect("the backup id").to_string();
    use std::os::unix::fs::PermissionsExt;
    for entry in walk(&env.path().join("state/backups")) {
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "backups are private: {}", entry.display());
    }
    let list = ok(&["certs", "backups", "--config", &c, "--name", "portal"]);
    assert!(
        list.contains(&undo_id) && list.contains(&old_serial) && list.contains(&new.serial()),
        "{list}"
    );
    // The undo line is a complete command: it works from any directory.
    let elsewhere = gatehouse_tests::temp_dir();
    let out = in_dir(elsewhere.path(), &undo);
    assert_eq!(out.status.code(), Some(0), "{undo:?}: {}", text(&out));
    assert_eq!(
        serial_of(&served(&g, "portal.test")[0]),
        new.serial(),
        "the restore was undone"
    );
    let out = refused(&[
        "certs", "restore", "--config", &c, "--name", "portal", "--backup", "nope",
    ]);
    assert!(out.contains("no backup \"nope\""), "{out}");
}

/// `gatehouse ARGS…` run from `dir`.
fn in_dir(dir: &Path, args: &[&str]) -> Output {
    Command::new(support::process::gatehouse_bin())
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run gatehouse")
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
fn inspect_shows_each_certificate_and_the_chain_verdict() {
    let out = ok(&["certs", "inspect", &s(&fx("messy-bundle.pem"))]);
    for expected in [
        "subject:",
        "names:      leaf.test, www.leaf.test",
        "sha256:",
        "ECDSA P-256",
        "root dropped",
        "out of order: will be reordered",
        "leaf, 1 intermediate",
    ] {
        assert!(out.contains(expected), "missing {expected:?}:\n{out}");
    }
    let out = ok(&["certs", "inspect", &s(&fx("leaf-ecp256.crt"))]);
    assert!(
        out.contains("incomplete: issuer \"CN=Gatehouse Test Intermediate\" missing"),
        "{out}"
    );
    let out = ok(&[
        "certs",
        "inspect",
        &s(&fx("leaf-rsa2048.p12")),
        "--password-file",
        &s(&fx("password.txt")),
    ]);
    assert!(
        out.contains("RSA 2048") && out.contains("matches the leaf (not shown)"),
        "{out}"
    );
    let out = ok(&[
        "certs",
        "inspect",
        &s(&fx("leaf-ecp256.der")),
        &s(&fx("inter.der")),
        &s(&fx("leaf-ecp256.key")),
    ]);
    assert!(out.contains("from ") && out.contains("inter.der"), "{out}");
    let out = refused(&["certs", "inspect", &s(&fx("leaf-sha1.crt"))]);
    assert!(
        out.contains("would be refused") && out.contains("SHA-1"),
        "{out}"
    );
}

#[test]
fn list_shows_the_configured_certificates() {
    let (env, _g, config) = deployment();
    let out = ok(&["certs", "list", "--config", &s(&config)]);
    assert!(
        out.contains("portal")
            && out.contains("portal.test,engine.test")
            && out.contains("portal.crt"),
        "{out}"
    );
    assert!(
        out.contains("DAYS LEFT") && out.contains("portal.crt"),
        "{out}"
    );
    write(env.path(), "portal.crt", "garbage");
    let out = refused(&["certs", "list", "--config", &s(&config)]);
    assert!(out.contains("ERROR"), "{out}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
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
