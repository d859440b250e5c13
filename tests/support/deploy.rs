//! A deployment for tests: a temp dir with a test PKI, certificates as files, a config
//! whose listeners and admin API bind `127.0.0.1:0`, and `curl` against it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::Gatehouse;
use crate::upstream::http_upstream;
use crate::{Pki, temp_dir, write};

pub const WAIT: Duration = Duration::from_secs(10);

/// A temp dir with a test PKI, certificates written as files, and a config.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub serials: HashMap<String, String>,
    pub cert_blocks: String,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Self {
        let dir = temp_dir();
        let pki = Pki::new();
        write(dir.path(), "root.pem", &pki.root.cert_pem);
        Self {
            dir,
            pki,
            serials: HashMap::new(),
            cert_blocks: String::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Issues (or reissues) certificate `name` for `names` and writes its files.
    pub fn issue(&mut self, name: &str, names: &[&str]) -> String {
        let leaf = self.pki.inter.leaf(names);
        self.pki.write_leaf(self.path(), name, &leaf);
        self.serials.insert(name.into(), leaf.serial());
        leaf.serial()
    }

    /// Adds a `[[certificate]]` block for `name` (files written by `issue`).
    pub fn certificate(&mut self, name: &str, names: &[&str]) {
        self.issue(name, names);
        self.cert_blocks.push_str(&format!(
            "[[certificate]]\nname = \"{name}\"\ncert = \"{name}.crt\"\nkey = \"{name}.key\"\nchain = \"{name}.chain.pem\"\n\n"
        ));
    }

    pub fn config(&self, listeners: &str) -> PathBuf {
        self.config_with("", listeners)
    }

    /// A config with `top` (top-level keys and sections) before the certificates; the
    /// admin API on `127.0.0.1:0` unless `top` has an `[admin]` section.
    pub fn config_with(&self, top: &str, listeners: &str) -> PathBuf {
        let admin = if top.contains("[admin]") {
            ""
        } else {
            "[admin]\nlisten = \"127.0.0.1:0\"\n"
        };
        let text = format!(
            "state_dir = \"state\"\nshutdown_timeout = 10\n{top}\n{admin}\n{}{listeners}",
            self.cert_blocks
        );
        write(self.path(), "gatehouse.toml", text)
    }

    /// `curl` against the proxy for `host`, verifying with the test root.
    pub fn curl(&self, addr: SocketAddr, host: &str, path: &str, extra: &[&str]) -> Output {
        curl_with_root(&self.path().join("root.pem"), addr, host, path, extra)
    }
}

/// `curl https://HOST:PORT/PATH` resolved to `addr`, trusting `root` (usable from a thread).
pub fn curl_with_root(
    root: &Path,
    addr: SocketAddr,
    host: &str,
    path: &str,
    extra: &[&str],
) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", addr.port()))
        .args(extra)
        .arg(format!("https://{host}:{}{path}", addr.port()))
        .output()
        .expect("run curl (is it installed?)")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn http_listener(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\nprotocol = \"http\"\ncertificates = [\"portal\", \"engine\"]\nupstream = \"http://{upstream}\"\n{extra}\n"
    )
}

/// The usual deployment: portal (default) and engine certificates, engine routed to its
/// own upstream.
pub fn portal_and_engine(extra: &str) -> (Env, Gatehouse) {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    env.certificate("engine", &["engine.test"]);
    let portal = http_upstream("portal");
    let engine = http_upstream("engine");
    let config = env.config(&format!(
        "{}\n[[listener.route]]\nserver_name = \"engine.test\"\nupstream = \"http://{engine}\"\n",
        http_listener(portal, extra)
    ));
    let g = Gatehouse::start(&config);
    (env, g)
}
