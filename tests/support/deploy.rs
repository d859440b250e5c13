//! A deployment for tests: a temp dir with a test PKI, certificates as files, a config
//! whose listeners and admin API bind `127.0.0.1:0`, and `curl` against it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::{Pki, temp_dir, write};

use super::process::Gatehouse;

pub const WAIT: Duration = Duration::from_secs(10);

/// A temp dir with a test PKI, certificates written as files, and a config.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    pub serials: HashMap<String, String>,
    /// The `[[certificate]]` blocks of the config, by certificate name, in order.
    pub cert_blocks: Vec<(String, String)>,
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
            cert_blocks: Vec::new(),
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
        self.certificate_block(
            name,
            &format!("cert = \"{name}.crt\"\nkey = \"{name}.key\"\nchain = \"{name}.chain.pem\""),
        );
    }

    /// Adds a `[[certificate]]` block for `name` with `keys` (`issuer = "internal"`, …).
    pub fn certificate_block(&mut self, name: &str, keys: &str) {
        self.cert_blocks.push((
            name.into(),
            format!("[[certificate]]\nname = \"{name}\"\n{keys}\n\n"),
        ));
    }

    /// Drops the `[[certificate]]` block of `name` from the configs written after.
    pub fn remove_certificate(&mut self, name: &str) {
        self.cert_blocks.retain(|(n, _)| n != name);
    }

    pub fn config(&self, listeners: &str) -> PathBuf {
        self.config_with("", listeners)
    }

    /// A config with `top` (top-level keys and sections) before the certificates; the
    /// admin API on `127.0.0.1:0` unless `top` has an `[admin]` section.
    pub fn config_with(&self, top: &str, listeners: &str) -> PathBuf {
        self.config_file("gatehouse.toml", top, listeners)
    }

    /// [`Env::config_with`] written to `file` (another config beside the usual one).
    pub fn config_file(&self, file: &str, top: &str, listeners: &str) -> PathBuf {
        let admin = if top.contains("[admin]") {
            ""
        } else {
            "[admin]\nlisten = \"127.0.0.1:0\"\n"
        };
        let certificates: String = self.cert_blocks.iter().map(|(_, b)| b.as_str()).collect();
        let text = format!(
            "state_dir = \"state\"\nshutdown_timeout = 10\n{top}\n{admin}\n{certificates}{listeners}"
        );
        write(self.path(), file, text)
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

/// A `[[listener]]` block, built from what a test sets: `name = "web"`, bound to
/// `127.0.0.1:0`, HTTP, serving the portal and engine certificates unless changed.
#[derive(Clone, Debug)]
pub struct ListenerToml {
    name: String,
    /// `127.0.0.1:0` unless set.
    bind: String,
    /// `http` or `tcp`.
    protocol: &'static str,
    certificates: Vec<String>,
    upstream: String,
    /// Further `key = value` lines, as written.
    lines: Vec<String>,
    /// `[[listener.route]]` blocks: server name, upstream URL.
    routes: Vec<(String, String)>,
}

impl ListenerToml {
    /// The `web` listener forwarding to `http://UPSTREAM`.
    pub fn http(upstream: SocketAddr) -> Self {
        Self {
            name: "web".into(),
            bind: "127.0.0.1:0".into(),
            protocol: "http",
            certificates: vec!["portal".into(), "engine".into()],
            upstream: format!("http://{upstream}"),
            lines: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// The `web` listener in TCP mode, piping to `tcp://UPSTREAM`.
    pub fn tcp(upstream: SocketAddr) -> Self {
        Self {
            protocol: "tcp",
            upstream: format!("tcp://{upstream}"),
            ..Self::http(upstream)
        }
    }

    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr.to_string();
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn certificates(mut self, names: &[&str]) -> Self {
        self.certificates = names.iter().map(|n| n.to_string()).collect();
        self
    }

    /// The upstream URL, as written (`https://…`, `ftp://…` for a broken config).
    pub fn upstream(mut self, url: &str) -> Self {
        self.upstream = url.into();
        self
    }

    /// Another `key = value` line (or several, one per line).
    pub fn set(mut self, lines: &str) -> Self {
        self.lines.extend(
            lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
        self
    }

    /// A route: `server_name` to `http://UPSTREAM`.
    pub fn route(mut self, server_name: &str, upstream: SocketAddr) -> Self {
        self.routes
            .push((server_name.into(), format!("http://{upstream}")));
        self
    }

    pub fn to_toml(&self) -> String {
        let certificates: Vec<String> = self
            .certificates
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect();
        let mut t = format!(
            "[[listener]]\nname = \"{}\"\nbind = \"{}\"\nprotocol = \"{}\"\ncertificates = [{}]\nupstream = \"{}\"\n",
            self.name,
            self.bind,
            self.protocol,
            certificates.join(", "),
            self.upstream
        );
        for l in &self.lines {
            t.push_str(l);
            t.push('\n');
        }
        for (name, upstream) in &self.routes {
            t.push_str(&format!(
                "[[listener.route]]\nserver_name = \"{name}\"\nupstream = \"{upstream}\"\n"
            ));
        }
        t
    }
}

impl std::fmt::Display for ListenerToml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_toml())
    }
}

/// The `web` listener forwarding to `upstream`, with `extra` lines.
pub fn http_listener(upstream: SocketAddr, extra: &str) -> String {
    ListenerToml::http(upstream).set(extra).to_toml()
}

/// The usual deployment: portal (default) and engine certificates, engine routed to its
/// own upstream.
pub fn portal_and_engine(extra: &str) -> (Env, Gatehouse) {
    portal_and_engine_env(extra, &[])
}

/// As [`portal_and_engine`], Gatehouse started with extra environment variables.
pub fn portal_and_engine_env(extra: &str, vars: &[(&str, &str)]) -> (Env, Gatehouse) {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    env.certificate("engine", &["engine.test"]);
    let portal = http_upstream("portal");
    let engine = http_upstream("engine");
    let config = env.config(
        &ListenerToml::http(portal)
            .set(extra)
            .route("engine.test", engine)
            .to_toml(),
    );
    let g = Gatehouse::start_env(&["run", "--config", &config.display().to_string()], vars);
    (env, g)
}
