//! The certificates page (the admin listener's `/`) in a real browser: Debian's headless
//! Chromium, driven by Playwright (`tests/console/drive.mjs`), against the real binary.
//! An operator logs in (after a wrong token), uploads a renewal, reads the dry run and
//! installs it; then uploads it with a key not its own (refused, nothing changes),
//! restores the backup and logs out. After each session `openssl s_client` on the proxy
//! port says which certificate is served.
//!
//! Needs node, `/usr/bin/chromium` and `tests/console/node_modules` (`npm ci` there); the
//! test is skipped without them unless GATEHOUSE_REQUIRE_TOOLS is set. With
//! GATEHOUSE_CONSOLE_SCREENSHOT=PATH (relative to the workspace root) the main page's
//! screenshot is copied to PATH, as docs/console.png is made.

#[path = "support/mod.rs"]
mod support;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::{temp_dir, write};
use serde_json::Value;
use support::deploy::{Env, ListenerToml};
use support::openssl::{openssl_in, p256_key, served_serial};
use support::process::Gatehouse;
use support::tools::{output_text, run_tool};

/// Debian's Chromium, which Playwright drives (it downloads no browser of its own).
const CHROMIUM: &str = "/usr/bin/chromium";

/// Bound on one run of the driver, which bounds itself at 90 s and each step at 10 s.
const DRIVE_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn an_operator_installs_a_renewal_in_the_browser_and_restores_the_original() {
    let Some(console) = browser() else {
        return;
    };
    let work = temp_dir();
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let original = env.serials["portal"].clone();
    let token = openssl_in(work.path(), &["rand", "-hex", "16"])
        .trim()
        .to_owned();
    let token_file = write(env.path(), "token", &token);
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600))
        .expect("token file mode");
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let config = env.config_with(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n",
        &listener.to_toml(),
    );
    let g = Gatehouse::start(&config);
    assert_eq!(
        hex(&served(&env, &g, work.path())),
        hex(&original),
        "before any change the proxy serves the configured certificate"
    );

    // A renewal as a CA sends it: a new certificate for the same name, its key and the
    // intermediate, in files of their own; and a key that belongs to no certificate.
    let renewal = env.pki.inter.leaf(&["portal.test"]);
    env.pki.write_leaf(work.path(), "portal", &renewal);
    p256_key(work.path(), "other.key");
    let screenshot = work.path().join("console.png");
    let base = g.admin_url("");
    let file = |name: &str| work.path().join(name).into_os_string();
    let vars = [
        ("CONSOLE_BASE", OsStr::new(&base).to_owned()),
        ("CONSOLE_TOKEN", OsStr::new(&token).to_owned()),
        ("CONSOLE_CHROMIUM", OsStr::new(CHROMIUM).to_owned()),
        ("CONSOLE_NAME", OsStr::new("portal").to_owned()),
        ("CONSOLE_CERT", file("portal.crt")),
        ("CONSOLE_KEY", file("portal.key")),
        ("CONSOLE_CHAIN", file("portal.chain.pem")),
        ("CONSOLE_WRONG_KEY", file("other.key")),
        ("CONSOLE_SCREENSHOT", screenshot.clone().into_os_string()),
        // Playwright's browser profile and Chromium's scratch files, gone with the dir.
        ("TMPDIR", work.path().as_os_str().to_owned()),
    ];

    let install = drive(&console, "install", &vars, &g);
    assert_eq!(
        shown(&install, "listed"),
        hex(&original),
        "the table shows the serial of the certificate served"
    );
    assert_eq!(
        step(&install, "listed")["days"],
        "days-ok",
        "a certificate 90 days from expiry is classed days-ok"
    );
    let dry_run = step(&install, "dry-run")["text"].as_str().unwrap_or("");
    for (which, serial) in [("current", &original), ("new", &renewal.serial())] {
        assert!(
            mentions(dry_run, serial),
            "the dry run shows the {which} serial {serial}:\n{dry_run}"
        );
    }
    assert_eq!(
        shown(&install, "installed"),
        hex(&renewal.serial()),
        "after Install the table shows the renewal's serial"
    );
    assert_eq!(
        hex(&served(&env, &g, work.path())),
        hex(&renewal.serial()),
        "after Install the proxy serves the renewal"
    );
    let png = std::fs::read(&screenshot).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the driver left a PNG screenshot of the page at {}",
        screenshot.display()
    );
    if let Some(to) = std::env::var_os("GATEHOUSE_CONSOLE_SCREENSHOT") {
        let to = workspace().join(to);
        std::fs::copy(&screenshot, &to)
            .unwrap_or_else(|e| panic!("copy the screenshot to {}: {e}", to.display()));
    }

    let restore = drive(&console, "restore", &vars, &g);
    assert_eq!(
        shown(&restore, "listed"),
        hex(&renewal.serial()),
        "a new session shows the installed renewal"
    );
    let refusal = step(&restore, "refused")["text"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(
        refusal.contains("match") && refusal.contains("key"),
        "the refusal says the key does not match the certificate:\n{refusal}"
    );
    assert_eq!(
        shown(&restore, "after-refusal"),
        hex(&renewal.serial()),
        "a refused upload changes nothing: the table still shows the renewal"
    );
    assert_eq!(
        shown(&restore, "restored"),
        hex(&original),
        "restoring the newest backup (the files the install replaced; a refusal makes none) \
         shows the original serial"
    );
    step(&restore, "logged-out");
    assert_eq!(
        hex(&served(&env, &g, work.path())),
        hex(&original),
        "after Restore the proxy serves the original certificate again"
    );
}

/// The driver's directory, when it can run here: node, Chromium and Playwright in its
/// `node_modules`. `None`, with a note, when one is missing (the test is skipped), unless
/// GATEHOUSE_REQUIRE_TOOLS is set.
fn browser() -> Option<PathBuf> {
    for (program, install) in [
        ("node", "apt-get install nodejs npm"),
        (CHROMIUM, "apt-get install chromium"),
    ] {
        let out = run_tool(Command::new(program).arg("--version"), install)?;
        assert!(
            out.status.success(),
            "{program} --version: {}",
            output_text(&out)
        );
    }
    let console = workspace().join("tests/console");
    if !console.join("node_modules/playwright-core").is_dir() {
        let install = format!("run `npm ci` in {}", console.display());
        assert!(
            std::env::var_os("GATEHOUSE_REQUIRE_TOOLS").is_none(),
            "Playwright is required here (GATEHOUSE_REQUIRE_TOOLS is set): {install}"
        );
        eprintln!("Playwright is not installed, this check is skipped: {install}");
        return None;
    }
    Some(console)
}

/// The workspace's root (cargo runs the test in `proxy/`).
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("proxy/ is in the workspace")
}

/// Runs `node drive.mjs PHASE` with `vars` (bounded by [`DRIVE_TIMEOUT`]); the records it
/// printed, one JSON object a line. Fails with its output and Gatehouse's log unless it
/// exits 0 with a `done` record.
fn drive(
    console: &Path,
    phase: &str,
    vars: &[(&str, std::ffi::OsString)],
    g: &Gatehouse,
) -> Vec<Value> {
    let mut child = Command::new("node")
        .arg("drive.mjs")
        .arg(phase)
        .current_dir(console)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node drive.mjs");
    let stdout = read_all(child.stdout.take().expect("stdout"));
    let stderr = read_all(child.stderr.take().expect("stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if start.elapsed() > DRIVE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "{}{}",
        stdout.join().expect("stdout reader"),
        stderr.join().expect("stderr reader")
    );
    let ran = match status {
        Some(status) => format!("exited with {status}"),
        None => format!("was killed after {DRIVE_TIMEOUT:?}"),
    };
    let records: Vec<Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished = records.last().is_some_and(|r| r["step"] == "done");
    assert!(
        status.is_some_and(|s| s.success()) && finished,
        "the operator's {phase} session goes as the certificates page promises; \
         drive.mjs {ran}:\n{output}\ngatehouse log:\n{}",
        g.log_text()
    );
    records
}

/// Reads `stream` to its end on a thread of its own.
fn read_all(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The record of `step` the driver printed.
fn step<'a>(records: &'a [Value], step: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["step"] == step)
        .unwrap_or_else(|| panic!("drive.mjs printed no {step:?} record: {records:?}"))
}

/// The serial the table showed at `step`, as [`hex`] writes it.
fn shown(records: &[Value], at: &str) -> String {
    let serial = step(records, at)["serial"].as_str();
    hex(serial.unwrap_or_else(|| panic!("the {at:?} record has a serial: {records:?}")))
}

/// The serial of the certificate the proxy serves for portal.test, as `openssl s_client`
/// sees it; the chain it is served with must verify to the test root for that name.
fn served(env: &Env, g: &Gatehouse, scratch: &Path) -> String {
    let root = env.path().join("root.pem");
    served_serial(g.addr("web"), "portal.test", Some(&root), scratch)
}

/// A serial as bare hex digits, lower case, without leading zeros: certstore writes
/// `11:ab:…`, openssl `11AB…`.
fn hex(serial: &str) -> String {
    let digits: String = serial
        .chars()
        .filter(|c| *c != ':')
        .flat_map(char::to_lowercase)
        .collect();
    digits.trim_start_matches('0').to_owned()
}

/// Whether `text` shows `serial`, however it is written.
fn mentions(text: &str, serial: &str) -> bool {
    hex(text).contains(&hex(serial))
}
