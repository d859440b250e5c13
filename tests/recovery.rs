//! When things go wrong before anyone looks: a certificate whose files broke before a start
//! serves its last known good version, a certificate can be put back to a default from the
//! internal CA, and the internal CA itself can be renewed. Driven as an operator would: the
//! real binary, `curl`, `openssl s_client`.

#[path = "support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::{serial_of, write};
use support::chores::{deployment, ok, refused, s, served, snapshot};
use support::deploy::{Env, ListenerToml};
use support::process::{Gatehouse, gatehouse};

/// `GET path` on the admin API.
fn admin_get(g: &Gatehouse, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", &g.admin_url(path)])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Certificate `name` as `/certs` shows it.
fn cert_status(g: &Gatehouse, name: &str) -> serde_json::Value {
    let certs: serde_json::Value =
        serde_json::from_str(&admin_get(g, "/certs")).expect("/certs is JSON");
    certs
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("/certs shows {name}: {certs}"))
}

fn stale_gauge(g: &Gatehouse, name: &str) -> Option<String> {
    let series = format!("gatehouse_certificate_stale{{certificate=\"{name}\"}} ");
    admin_get(g, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(&series).map(str::to_owned))
}

#[test]
fn files_broken_before_a_start_serve_the_last_known_good_version() {
    let (env, g, config) = deployment();
    let kept = env.path().join("state/last-good/portal.pem");
    let mode = std::fs::metadata(&kept)
        .expect("the last good version is kept")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "it holds the key: 0600");
    let good = env.serials["portal"].clone();
    drop(g);

    // A renewal half done before the reboot: the new certificate is in place, its key not.
    let renewed = env.pki.inter.leaf(&["portal.test", "engine.test"]);
    write(env.path(), "portal.crt", &renewed.cert_pem);
    let out = refused(&["check", "--config", &s(&config)]);
    assert!(
        out.contains("portal.key") && out.contains("last known good version"),
        "check fails, names the files and says what run would serve: {out}"
    );

    let g = Gatehouse::start(&config);
    let error = g.wait_for_log(
        |l| l.contains("ERROR") && l.contains("last known good"),
        Duration::from_secs(5),
    );
    let error = error.expect("an ERROR line at start");
    assert!(error.contains("portal.crt"), "it names the files: {error}");
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), good);
    let status = cert_status(&g, "portal");
    assert_eq!(status["stale"], true, "{status}");
    assert_eq!(stale_gauge(&g, "portal").as_deref(), Some("1"));
    let list = gatehouse(&["certs", "list", "--config", &s(&config)]);
    let list_text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.status.code(), Some(1));
    assert!(list_text.contains("stale"), "{list_text}");

    // The renewal finished: the key arrives, a reload serves it and nothing is stale.
    write(env.path(), "portal.key", &renewed.key_pem);
    ok(&["reload", "--config", &s(&config)]);
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), renewed.serial());
    assert_eq!(cert_status(&g, "portal")["stale"], false);
    assert_eq!(stale_gauge(&g, "portal").as_deref(), Some("0"));
}

#[test]
fn a_certificate_that_never_loaded_stops_the_start() {
    let (env, g, config) = deployment();
    drop(g);
    std::fs::remove_dir_all(env.path().join("state/last-good")).expect("no last good");
    write(env.path(), "portal.crt", "not a certificate\n");
    let out = gatehouse(&["run", "--config", &s(&config)]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("portal.crt"), "{text}");
}

/// `openssl s_client` to the web listener for `sni`, verifying with `ca_file`: whether the
/// served chain verifies (exit 0 with `-verify_return_error`).
fn openssl_verifies(g: &Gatehouse, sni: &str, ca_file: &std::path::Path) -> bool {
    Command::new("openssl")
        .args(["s_client", "-connect", &g.addr("web").to_string()])
        .args(["-servername", sni, "-verify_return_error", "-CAfile"])
        .arg(ca_file)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client")
        .status
        .success()
}

/// The complete `gatehouse …` command an `undo:` line of `out` prints, run as it is.
fn run_undo(out: &str) -> String {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("undo: gatehouse "))
        .unwrap_or_else(|| panic!("an undo line: {out}"));
    let args: Vec<&str> = line.split_whitespace().collect();
    ok(&args)
}

#[test]
fn certs_reset_puts_back_a_default_certificate_from_the_internal_ca_and_can_be_undone() {
    let (env, g, config) = deployment();
    let c = s(&config);
    let original = env.serials["portal"].clone();
    let before = snapshot(env.path());
    let plan = ok(&[
        "certs",
        "reset",
        "--config",
        &c,
        "--name",
        "portal",
        "--dry-run",
    ]);
    assert!(plan.contains("portal.test, engine.test"), "{plan}");
    assert_eq!(before, snapshot(env.path()), "a dry run writes nothing");

    let out = ok(&["certs", "reset", "--config", &c, "--name", "portal"]);
    let status = cert_status(&g, "portal");
    assert_ne!(status["serial"], original.as_str(), "{out}");
    assert!(
        status["issuer"]
            .as_str()
            .is_some_and(|i| i.contains("Gatehouse Internal CA")),
        "{status}"
    );
    assert_eq!(status["chain_complete"], true, "the internal CA is known");
    let ca = write(
        env.path(),
        "internal-ca.pem",
        ok(&["certs", "export-ca", "--config", &c]),
    );
    for name in ["portal.test", "engine.test"] {
        assert!(openssl_verifies(&g, name, &ca), "{name} verifies to the CA");
    }

    run_undo(&out);
    assert_eq!(serial_of(&served(&g, "portal.test")[0]), original);
}

#[test]
fn ca_rotate_reissues_internal_certificates_and_export_ca_prints_both_cas() {
    let mut env = Env::new();
    env.certificate_block(
        "default",
        "issuer = \"internal\"\nnames = [\"portal.test\"]",
    );
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["default"]);
    let config = env.config(&listener.to_toml());
    let c = s(&config);
    let g = Gatehouse::start(&config);
    let old_ca = write(
        env.path(),
        "old-ca.pem",
        ok(&["certs", "export-ca", "--config", &c]),
    );
    assert!(openssl_verifies(&g, "portal.test", &old_ca));
    let old_serial = cert_status(&g, "default")["serial"].clone();

    let out = ok(&["certs", "ca", "rotate", "--config", &c]);
    assert!(out.contains("reissued \"default\""), "{out}");
    assert_ne!(cert_status(&g, "default")["serial"], old_serial);
    let both = ok(&["certs", "export-ca", "--config", &c]);
    assert_eq!(
        both.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "the new CA and, for the transition, the previous one: {both}"
    );
    let new_only = both
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .unwrap_or_default();
    let new_ca = write(env.path(), "new-ca.pem", new_only);
    assert!(
        openssl_verifies(&g, "portal.test", &new_ca),
        "issued by the new CA"
    );
    assert!(
        !openssl_verifies(&g, "portal.test", &old_ca),
        "no longer by the old one"
    );
    let backups = ok(&["certs", "backups", "--config", &c, "--name", "default"]);
    assert!(
        backups.contains(old_serial.as_str().unwrap_or("?")),
        "the replaced certificate is backed up: {backups}"
    );
}

#[test]
fn an_install_that_cannot_write_its_backup_is_refused_with_the_files_untouched() {
    let (env, g, config) = deployment();
    // Tests run as root, which read-only permissions do not stop: a file where the
    // backups directory should be fails every write under it, as a full or read-only
    // state_dir would.
    write(env.path(), "state/backups", "in the way\n");
    let before = snapshot(env.path());
    let renewed = env.pki.inter.leaf(&["portal.test", "engine.test"]);
    let cert = write(env.path(), "renewed.crt", &renewed.cert_pem);
    let key = write(env.path(), "renewed.key", &renewed.key_pem);
    let out = refused(&[
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
    for expected in [
        "install refused",
        "state/backups",
        "state_dir is writable",
        "untouched",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let after: Vec<_> = snapshot(env.path())
        .into_iter()
        .filter(|(p, _)| !p.ends_with("renewed.crt") && !p.ends_with("renewed.key"))
        .collect();
    assert_eq!(before, after, "the certificate's files are as they were");
    assert_eq!(
        serial_of(&served(&g, "portal.test")[0]),
        env.serials["portal"]
    );
}
