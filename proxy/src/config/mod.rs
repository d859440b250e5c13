//! The configuration file: `RawConfig` as written (unknown keys rejected), then `Config`,
//! checked as a whole so every problem is reported at once, each naming the key, the value
//! and the fix. Relative paths are relative to the configuration file.
//!
//! # Layout
//! - `raw`: the file as written, and the choices a key takes.
//! - `admin`: the `[admin]` section.
//! - `certificates`, `listeners`: the checks of the `[[certificate]]` (and
//!   `[internal_ca]`) and `[[listener]]` blocks.
//! - `duration`: `30`, `"500ms"`, `"30s"`, `"5m"`.
//! - `files`: the files a loaded configuration reads (what `watch = true` watches).
//! - `peers`: mutual TLS clients and the proxies trusted to send PROXY protocol headers.
//! - `upstream`: upstream URLs and their TLS options.
//! - `host`: the host's names, the default names of an internal certificate.

mod admin;
mod certificates;
mod duration;
mod files;
pub mod host;
mod listeners;
mod peers;
pub mod raw;
pub mod upstream;

pub use admin::{ADMIN_TLS, Admin};
pub use peers::TrustedProxies;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certstore::{CertSpec, Intermediates, ListenerSpec, StoreConfig};
use serde::Deserialize;

use self::raw::RawConfig;
use self::upstream::Upstream;

/// Where Gatehouse keeps what it manages when the file does not say.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gatehouse";
/// Long enough for a slow client's request to finish, short enough for a deploy.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake takes a round trip or two; ten seconds covers a bad mobile link.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds how long a client may take to send request headers (slowloris).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// An idle keep-alive connection is closed after this long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's `send_timeout`: a client that takes nothing for a minute is gone or hostile.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting to an upstream on the appliance itself is instant; 5 s means it is down.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an upstream may take to start answering before the client gets 504.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle upstream connection is kept for reuse: below common upstream
/// keep-alive timeouts (nginx 75 s), so the upstream never closes one under a request.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Per listener; the permit is taken before `accept`, so excess clients wait in the backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Request headers larger than this get 431.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 64 * 1024;
/// More worker threads than this is a typo, not a machine.
pub const MAX_WORKERS: usize = 1024;

/// One worker per core: each runs its own event loop, as nginx's `worker_processes auto`.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Trust for TLS upstreams, shared by all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTlsGlobal {
    /// Private roots added to the public ones (the appliance's own CA, say).
    pub ca_file: Option<PathBuf>,
    /// Add the operating system's trust store.
    pub use_system_roots: bool,
}

/// What a listener speaks after TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 (by ALPN) to clients, forwarded to an HTTP upstream.
    Http,
    /// Bytes both ways to a TCP upstream.
    Tcp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Tcp => "tcp",
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    /// Threads serving connections, each with its own event loop.
    pub workers: usize,
    pub log_format: LogFormat,
    pub access_log: bool,
    pub metrics: bool,
    /// Reload when a file the configuration reads changes (`watch = true`).
    pub watch: bool,
    /// `None` when `[admin] enabled = false`.
    pub admin: Option<Admin>,
    pub upstream_tls: UpstreamTlsGlobal,
    pub certificates: Vec<CertSpec>,
    /// Certificates the internal CA issues (their `CertSpec`s point at `state_dir/certs/`).
    pub internal: Vec<InternalCert>,
    /// Certificates whose OCSP response Gatehouse fetches (their `CertSpec`s' `ocsp` is in
    /// `state_dir/ocsp/`).
    pub ocsp_fetch: Vec<String>,
    /// What the internal CA is made with, when it is first needed.
    pub internal_ca: certstore::CaSubject,
    pub listeners: Vec<Listener>,
}

/// A certificate with `issuer = "internal"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalCert {
    pub name: String,
    /// Lowercase DNS names or IP addresses.
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the internal CA lives under `state_dir`.
pub fn ca_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("ca")
}

/// Where `certs install --intermediate` keeps the intermediates it adds to the pool that
/// completes chains.
pub fn intermediates_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("intermediates")
}

/// Where the OCSP responses Gatehouse fetches are kept (`NAME.der`), so a restart staples
/// at once.
pub fn ocsp_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("ocsp")
}

/// Where each certificate's last good material is kept (chain and key, 0600).
pub fn last_good_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("last-good")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub bind: SocketAddr,
    pub protocol: Protocol,
    pub certificates: Vec<String>,
    pub upstream: Upstream,
    pub routes: Vec<Route>,
    pub strict_sni: bool,
    pub tls13_only: bool,
    pub session_resumption: bool,
    /// Ticket keys shared by the replicas, so a session resumes on any of them; without
    /// it each instance makes its own and rotates them.
    pub session_ticket_key_file: Option<PathBuf>,
    /// Mutual TLS: clients' certificates are asked for and verified.
    pub client_auth: Option<ClientAuth>,
    /// Each connection starts with a PROXY protocol header from one of these addresses.
    pub proxy_protocol: Option<TrustedProxies>,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long the response bytes waiting for a client may make no progress (the client
    /// stopped reading, or its HTTP/2 window stays shut) before the connection is closed.
    pub send_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    /// How long an idle upstream connection is kept for reuse.
    pub upstream_idle_timeout: Duration,
    pub max_header_size: usize,
}

/// A listener's mutual TLS: which clients' certificates it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// Whether a client without a certificate is refused.
    pub required: bool,
    /// The CAs whose certificates are accepted (PEM or DER).
    pub ca_file: PathBuf,
    /// Revoked client certificates (PEM or DER CRLs), read again at each reload.
    pub crl_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Lowercase.
    pub server_name: String,
    pub upstream: Upstream,
}

/// Every problem found in a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {} is not valid TOML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("config {} has {} problem(s):\n{}", path.display(), problems.len(), bullet(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
        /// The `[[certificate]]` blocks from files that checked fine: `check` loads them
        /// too, so one pass reports the certificates' problems beside the config's.
        certificates: Vec<CertSpec>,
    },
}

fn bullet(problems: &[String]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    lines.join("\n")
}

impl Listener {
    /// The listener's upstream, then each route's.
    pub fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        std::iter::once(&self.upstream).chain(self.routes.iter().map(|r| &r.upstream))
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Checks configuration text as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        // Relative paths are relative to the file, and every path is kept absolute: backups
        // record them, and a command run from another directory must find the same files.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let base = absolute.parent().unwrap_or(Path::new("/"));
        Self::check(raw, path, base)
    }

    fn check(raw: RawConfig, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let state_dir = raw
            .state_dir
            .as_deref()
            .map(resolve)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let certs = certificates::check(&raw.certificates, &state_dir, &resolve, &mut problems);
        let cx = listeners::Context {
            resolve: &resolve,
            cert_names: &certs.names,
        };
        let listeners = listeners::check(&raw.listeners, &cx, &mut problems);
        let log_format = match raw.log_format {
            Some(f) => f.check("", "log_format", &mut problems),
            None => Some(LogFormat::Text),
        };
        let admin = admin::check(raw.admin.as_ref(), &resolve, &certs.names, &mut problems);
        let internal_ca = certificates::internal_ca(raw.internal_ca.as_ref(), &mut problems);
        let upstream_tls = match &raw.upstream_tls {
            Some(t) => UpstreamTlsGlobal {
                ca_file: t.ca_file.as_deref().map(resolve),
                use_system_roots: t.use_system_roots,
            },
            None => UpstreamTlsGlobal::default(),
        };
        let shutdown_timeout = match &raw.shutdown_timeout {
            Some(d) => d.check("", "shutdown_timeout", &mut problems),
            None => Some(DEFAULT_SHUTDOWN_TIMEOUT),
        };
        let workers = match raw.workers {
            None => default_workers(),
            Some(n @ 1..=MAX_WORKERS) => n,
            Some(n) => {
                problems.push(format!(
                    "workers = {n} is out of range; give 1 to {MAX_WORKERS}, or leave it out for one per core"
                ));
                1
            }
        };
        match (log_format, shutdown_timeout) {
            (Some(log_format), Some(shutdown_timeout)) if problems.is_empty() => Ok(Self {
                workers,
                state_dir,
                internal: certs.internal,
                ocsp_fetch: certs.ocsp_fetch,
                internal_ca,
                pid_file: raw.pid_file.as_deref().map(resolve),
                shutdown_timeout,
                log_format,
                access_log: raw.access_log,
                metrics: raw.metrics.unwrap_or(true),
                watch: raw.watch,
                admin,
                upstream_tls,
                certificates: certs.specs,
                listeners,
            }),
            _ => Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
                certificates: certs
                    .specs
                    .into_iter()
                    .filter(|c| !certs.internal.iter().any(|i| i.name == c.name))
                    .collect(),
            }),
        }
    }

    /// What the certificate store loads.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            certificates: self.certificates.clone(),
            listeners: self
                .listeners
                .iter()
                .map(|l| ListenerSpec {
                    name: l.name.clone(),
                    certificates: l.certificates.clone(),
                    strict_sni: l.strict_sni,
                })
                .chain(self.admin.as_ref().and_then(|a| {
                    Some(ListenerSpec {
                        name: ADMIN_TLS.into(),
                        certificates: vec![a.certificate.clone()?],
                        strict_sni: false,
                    })
                }))
                .collect(),
            intermediates: vec![
                intermediates_dir(&self.state_dir),
                ca_dir(&self.state_dir).join(certstore::InternalCa::CERT_FILE),
                // What `certs ca rotate` replaced: certificates it issued stay complete.
                ca_dir(&self.state_dir)
                    .join(certstore::InternalCa::PREVIOUS_DIR)
                    .join(certstore::InternalCa::CERT_FILE),
            ],
            last_good_dir: Some(last_good_dir(&self.state_dir)),
        }
    }

    /// The pool of known intermediates, as a load or reload gathers it.
    pub fn intermediates(&self) -> Intermediates {
        Intermediates::gather(&self.store_config())
    }
}

#[cfg(test)]
mod tests;
