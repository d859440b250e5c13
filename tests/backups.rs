//! Backups, restore and the read-only chores end to end, typed as a user would: `certs
//! restore` (dry run, from the config's directory, its undo line from anywhere), `certs
//! backups`, `certs inspect` and `certs list`.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse_tests::{fixture, serial_of, write};
use support::chores::*;
use support::deploy::text;

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

#[test]
fn inspect_shows_each_certificate_and_the_chain_verdict() {
    let out = ok(&["certs", "inspect", &s(&fixture("messy-bundle.pem"))]);
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
    let out = ok(&["certs", "inspect", &s(&fixture("leaf-ecp256.crt"))]);
    assert!(
        out.contains("incomplete: issuer \"CN=Gatehouse Test Intermediate\" missing"),
        "{out}"
    );
    let out = ok(&[
        "certs",
        "inspect",
        &s(&fixture("leaf-rsa2048.p12")),
        "--password-file",
        &s(&fixture("password.txt")),
    ]);
    assert!(
        out.contains("RSA 2048") && out.contains("matches the leaf (not shown)"),
        "{out}"
    );
    let out = ok(&[
        "certs",
        "inspect",
        &s(&fixture("leaf-ecp256.der")),
        &s(&fixture("inter.der")),
        &s(&fixture("leaf-ecp256.key")),
    ]);
    assert!(out.contains("from ") && out.contains("inter.der"), "{out}");
    let out = refused(&["certs", "inspect", &s(&fixture("leaf-sha1.crt"))]);
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
