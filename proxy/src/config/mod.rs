//! The configuration file: `RawConfig` as written (unknown keys rejected), then `Config`,
//! checked as a whole so every problem is reported at once, each naming the key, the value
//! and the fix. Relative paths are relative to the configuration file.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certstore::{CertSpec, ListenerSpec, Source, StoreConfig};
use serde::Deserialize;

use crate::upstream::{Upstream, UpstreamError, UpstreamOptions, UpstreamProtocol};

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
/// Connecting to an upstream on the appliance itself is instant; 5 s means it is down.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an upstream may take to start answering before the client gets 504.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
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

/// The admin API listens on loopback only unless told otherwise (and then needs a token).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9900";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub state_dir: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// Seconds.
    pub shutdown_timeout: Option<u64>,
    /// Threads serving connections; one per core when absent.
    pub workers: Option<usize>,
    pub log_format: Option<String>,
    #[serde(default)]
    pub access_log: bool,
    /// Export Prometheus metrics (on by default; off only to measure what they cost).
    pub metrics: Option<bool>,
    pub admin: Option<RawAdmin>,
    pub upstream_tls: Option<RawUpstreamTls>,
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<RawCertificate>,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<RawListener>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub name: String,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub chain: Option<PathBuf>,
    pub pkcs12: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub trust_anchors: Option<PathBuf>,
    /// `"internal"`: issued by Gatehouse's internal CA, no files to supply.
    pub issuer: Option<String>,
    /// Names for an internal certificate (default: the host's name and FQDN).
    pub names: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: String,
    pub bind: String,
    pub protocol: Option<String>,
    #[serde(default)]
    pub certificates: Vec<String>,
    pub upstream: String,
    #[serde(default)]
    pub strict_sni: bool,
    pub min_tls_version: Option<String>,
    pub session_resumption: Option<bool>,
    pub max_connections: Option<usize>,
    /// Seconds, as all the timeouts.
    pub handshake_timeout: Option<u64>,
    pub header_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub upstream_connect_timeout: Option<u64>,
    pub upstream_timeout: Option<u64>,
    pub max_header_size: Option<usize>,
    pub upstream_ca_file: Option<PathBuf>,
    pub upstream_server_name: Option<String>,
    pub upstream_client_cert: Option<PathBuf>,
    pub upstream_client_key: Option<PathBuf>,
    #[serde(default)]
    pub upstream_insecure_skip_verify: bool,
    pub upstream_protocol: Option<String>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub server_name: String,
    pub upstream: String,
    pub upstream_ca_file: Option<PathBuf>,
    pub upstream_server_name: Option<String>,
    pub upstream_client_cert: Option<PathBuf>,
    pub upstream_client_key: Option<PathBuf>,
    #[serde(default)]
    pub upstream_insecure_skip_verify: bool,
    pub upstream_protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub use_system_roots: bool,
}

/// The `upstream_*` keys, as written on a listener or a route.
struct RawUpstreamOptions<'a> {
    ca_file: &'a Option<PathBuf>,
    server_name: &'a Option<String>,
    client_cert: &'a Option<PathBuf>,
    client_key: &'a Option<PathBuf>,
    insecure_skip_verify: bool,
    protocol: &'a Option<String>,
}

macro_rules! raw_upstream_options {
    ($raw:expr) => {
        RawUpstreamOptions {
            ca_file: &$raw.upstream_ca_file,
            server_name: &$raw.upstream_server_name,
            client_cert: &$raw.upstream_client_cert,
            client_key: &$raw.upstream_client_key,
            insecure_skip_verify: $raw.upstream_insecure_skip_verify,
            protocol: &$raw.upstream_protocol,
        }
    };
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub listen: SocketAddr,
    /// When set, every POST needs `Authorization: Bearer <token>`.
    pub token_file: Option<PathBuf>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    /// Threads serving connections, each with its own event loop.
    pub workers: usize,
    pub log_format: LogFormat,
    pub access_log: bool,
    pub metrics: bool,
    /// `None` when `[admin] enabled = false`.
    pub admin: Option<Admin>,
    pub upstream_tls: UpstreamTlsGlobal,
    pub certificates: Vec<CertSpec>,
    /// Certificates the internal CA issues (their `CertSpec`s point at `state_dir/certs/`).
    pub internal: Vec<InternalCert>,
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
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_header_size: usize,
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
    },
}

fn bullet(problems: &[String]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    lines.join("\n")
}

/// Checks the `upstream_*` keys of one upstream (`key` names it in messages).
fn upstream_options(
    what: &str,
    key: &str,
    upstream: &Upstream,
    raw: RawUpstreamOptions<'_>,
    resolve: &dyn Fn(&Path) -> PathBuf,
    problems: &mut Vec<String>,
) -> UpstreamOptions {
    let tls_only = [
        ("upstream_ca_file", raw.ca_file.is_some()),
        ("upstream_server_name", raw.server_name.is_some()),
        ("upstream_client_cert", raw.client_cert.is_some()),
        ("upstream_client_key", raw.client_key.is_some()),
        ("upstream_insecure_skip_verify", raw.insecure_skip_verify),
    ];
    if !upstream.kind.is_tls() {
        for (name, set) in tls_only {
            if set {
                problems.push(format!(
                    "{what}: {name} applies to TLS upstreams, but {key} = \"{}\" is plain; use https:// or tls://, or remove {name}",
                    upstream.original
                ));
            }
        }
    }
    let client_cert = match (raw.client_cert, raw.client_key) {
        (Some(c), Some(k)) => Some((resolve(c), resolve(k))),
        (None, None) => None,
        _ => {
            problems.push(format!(
                "{what}: upstream_client_cert and upstream_client_key go together; set both or neither"
            ));
            None
        }
    };
    if let Some(name) = raw.server_name
        && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        problems.push(format!(
            "{what}: upstream_server_name = \"{name}\" is not a DNS name or IP address"
        ));
    }
    if raw.insecure_skip_verify && raw.ca_file.is_some() {
        problems.push(format!(
            "{what}: upstream_insecure_skip_verify makes upstream_ca_file pointless; remove one"
        ));
    }
    let protocol = match raw.protocol.as_deref() {
        None | Some("auto") => UpstreamProtocol::Auto,
        Some("http1") => UpstreamProtocol::Http1,
        Some("http2") => UpstreamProtocol::Http2,
        Some(other) => {
            problems.push(format!(
                "{what}: upstream_protocol = \"{other}\" is not supported; use \"auto\", \"http1\" or \"http2\""
            ));
            UpstreamProtocol::Auto
        }
    };
    UpstreamOptions {
        ca_file: raw.ca_file.as_deref().map(resolve),
        server_name: raw.server_name.clone(),
        client_cert,
        insecure_skip_verify: raw.insecure_skip_verify,
        protocol,
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
        let base = path.parent().unwrap_or(Path::new("."));
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
        let mut certificates = Vec::new();
        let mut internal = Vec::new();
        let mut cert_names = HashSet::new();
        for c in &raw.certificates {
            let what = format!("certificate \"{}\"", c.name);
            if c.name.is_empty() {
                problems
                    .push("certificate: `name` is empty; give every [[certificate]] a name".into());
            }
            if !cert_names.insert(c.name.clone()) {
                problems.push(format!(
                    "{what}: defined twice; rename one of the [[certificate]] blocks"
                ));
            }
            match c.issuer.as_deref() {
                Some("internal") => {
                    if c.cert.is_some()
                        || c.key.is_some()
                        || c.chain.is_some()
                        || c.pkcs12.is_some()
                        || c.password_file.is_some()
                    {
                        problems.push(format!(
                            "{what}: issuer = \"internal\" has no files to supply; remove cert/key/chain/pkcs12/password_file, or remove issuer"
                        ));
                        continue;
                    }
                    let names: Vec<String> = match &c.names {
                        Some(n) => n.iter().map(|n| n.to_ascii_lowercase()).collect(),
                        None => crate::host::names(),
                    };
                    if names.is_empty() {
                        problems.push(format!("{what}: `names` is empty; list the host names the certificate must cover"));
                        continue;
                    }
                    let dir = state_dir.join("certs");
                    let ic = InternalCert {
                        name: c.name.clone(),
                        names,
                        cert: dir.join(format!("{}.crt", c.name)),
                        key: dir.join(format!("{}.key", c.name)),
                    };
                    certificates.push(CertSpec {
                        name: c.name.clone(),
                        source: Source::Files {
                            cert: ic.cert.clone(),
                            key: ic.key.clone(),
                            chain: None,
                        },
                        trust_anchors: Some(
                            ca_dir(&state_dir).join(certstore::InternalCa::CERT_FILE),
                        ),
                    });
                    internal.push(ic);
                    continue;
                }
                Some(other) => {
                    problems.push(format!(
                        "{what}: issuer = \"{other}\" is not supported; use \"internal\" (Gatehouse's own CA) or remove it and name the files"
                    ));
                    continue;
                }
                None if c.names.is_some() => {
                    problems.push(format!(
                        "{what}: `names` goes with issuer = \"internal\"; a certificate from files takes its names from the certificate"
                    ));
                }
                None => {}
            }
            let source = match (&c.cert, &c.key, &c.pkcs12, &c.password_file) {
                (Some(cert), Some(key), None, None) => Some(Source::Files {
                    cert: resolve(cert),
                    key: resolve(key),
                    chain: c.chain.as_deref().map(resolve),
                }),
                (None, None, Some(p12), Some(pw)) if c.chain.is_none() => Some(Source::Pkcs12 {
                    path: resolve(p12),
                    password_file: resolve(pw),
                }),
                (None, None, Some(_), Some(_)) => {
                    problems.push(format!(
                        "{what}: `chain` goes with `cert`/`key`, not `pkcs12`; the PKCS#12 file carries its own chain: remove `chain`"
                    ));
                    None
                }
                (None, None, Some(_), None) => {
                    problems.push(format!(
                        "{what}: `pkcs12` needs `password_file`; write the password to a file and name it"
                    ));
                    None
                }
                (Some(_), None, None, None) => {
                    problems.push(format!(
                        "{what}: `cert` needs `key`; name the private key file (it may be the same file as `cert`)"
                    ));
                    None
                }
                (None, Some(_), None, None) => {
                    problems.push(format!(
                        "{what}: `key` needs `cert`; name the certificate file"
                    ));
                    None
                }
                (None, None, None, _) => {
                    problems.push(format!(
                        "{what}: no files; set `cert` and `key` (PEM/DER), `pkcs12` and `password_file`, or issuer = \"internal\""
                    ));
                    None
                }
                _ => {
                    problems.push(format!(
                        "{what}: set either `cert`/`key` or `pkcs12`/`password_file`, not both"
                    ));
                    None
                }
            };
            if let Some(source) = source {
                certificates.push(CertSpec {
                    name: c.name.clone(),
                    source,
                    trust_anchors: c.trust_anchors.as_deref().map(resolve),
                });
            }
        }

        let mut listeners = Vec::new();
        let mut listener_names = HashSet::new();
        let mut binds = HashSet::new();
        for l in &raw.listeners {
            let what = format!("listener \"{}\"", l.name);
            if !listener_names.insert(l.name.clone()) {
                problems.push(format!(
                    "{what}: defined twice; rename one of the [[listener]] blocks"
                ));
            }
            let bind = match l.bind.parse::<SocketAddr>() {
                Ok(addr) => {
                    if addr.port() != 0 && !binds.insert(addr) {
                        problems.push(format!(
                            "{what}: bind = \"{}\" is used by another listener; give each listener its own port",
                            l.bind
                        ));
                    }
                    Some(addr)
                }
                Err(_) => {
                    problems.push(format!(
                        "{what}: bind = \"{}\" is not an address; write IP:PORT, e.g. \"0.0.0.0:443\" or \"[::]:443\"",
                        l.bind
                    ));
                    None
                }
            };
            let protocol = match l.protocol.as_deref() {
                None | Some("http") => Some(Protocol::Http),
                Some("tcp") => Some(Protocol::Tcp),
                Some(other) => {
                    problems.push(format!(
                        "{what}: protocol = \"{other}\" is not supported; use \"http\" or \"tcp\""
                    ));
                    None
                }
            };
            if l.certificates.is_empty() {
                problems.push(format!(
                    "{what}: `certificates` is empty; list the [[certificate]] names it serves, the default first"
                ));
            }
            for name in &l.certificates {
                if !cert_names.contains(name) {
                    problems.push(format!(
                        "{what}: certificate \"{name}\" is not defined; define it in a [[certificate]] block or remove it from certificates"
                    ));
                }
            }
            let parse_upstream = |key: &str,
                                  value: &str,
                                  opts: RawUpstreamOptions<'_>,
                                  problems: &mut Vec<String>| {
                match (protocol, Upstream::parse(value)) {
                    (_, Err(e)) => {
                        problems.push(format!("{what}: {key} = \"{value}\": {e}"));
                        None
                    }
                    (Some(p), Ok(u)) if !u.fits(p) => {
                        problems.push(format!(
                            "{what}: {key} = \"{value}\" does not fit protocol \"{p}\"; {}",
                            UpstreamError::hint_for(p)
                        ));
                        None
                    }
                    (_, Ok(mut u)) => {
                        u.options = upstream_options(&what, key, &u, opts, &resolve, problems);
                        Some(u)
                    }
                }
            };
            let upstream = parse_upstream(
                "upstream",
                &l.upstream,
                raw_upstream_options!(l),
                &mut problems,
            );
            let mut routes = Vec::new();
            let mut route_names = HashSet::new();
            for r in &l.routes {
                let name = r.server_name.to_ascii_lowercase();
                if !route_names.insert(name.clone()) {
                    problems.push(format!(
                        "{what}: route server_name = \"{}\" appears twice; keep one",
                        r.server_name
                    ));
                }
                if let Some(u) = parse_upstream(
                    "route upstream",
                    &r.upstream,
                    raw_upstream_options!(r),
                    &mut problems,
                ) {
                    routes.push(Route {
                        server_name: name,
                        upstream: u,
                    });
                }
            }
            let tls13_only = match l.min_tls_version.as_deref() {
                None | Some("1.2") => false,
                Some("1.3") => true,
                Some(other) => {
                    problems.push(format!(
                        "{what}: min_tls_version = \"{other}\" is not supported; use \"1.2\" or \"1.3\""
                    ));
                    false
                }
            };
            let secs = |v: Option<u64>,
                        key: &str,
                        default: Duration,
                        problems: &mut Vec<String>| match v {
                Some(0) => {
                    problems.push(format!(
                        "{what}: {key} = 0; give a number of seconds above 0"
                    ));
                    default
                }
                Some(s) => Duration::from_secs(s),
                None => default,
            };
            let handshake_timeout = secs(
                l.handshake_timeout,
                "handshake_timeout",
                DEFAULT_HANDSHAKE_TIMEOUT,
                &mut problems,
            );
            let header_timeout = secs(
                l.header_timeout,
                "header_timeout",
                DEFAULT_HEADER_TIMEOUT,
                &mut problems,
            );
            let idle_timeout = secs(
                l.idle_timeout,
                "idle_timeout",
                DEFAULT_IDLE_TIMEOUT,
                &mut problems,
            );
            let upstream_connect_timeout = secs(
                l.upstream_connect_timeout,
                "upstream_connect_timeout",
                DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
                &mut problems,
            );
            let upstream_timeout = secs(
                l.upstream_timeout,
                "upstream_timeout",
                DEFAULT_UPSTREAM_TIMEOUT,
                &mut problems,
            );
            let max_connections = match l.max_connections {
                Some(0) => {
                    problems.push(format!(
                        "{what}: max_connections = 0 would refuse everyone; remove it or raise it"
                    ));
                    DEFAULT_MAX_CONNECTIONS
                }
                Some(n) => n,
                None => DEFAULT_MAX_CONNECTIONS,
            };
            let max_header_size = match l.max_header_size {
                Some(n) if n < 8192 => {
                    problems.push(format!("{what}: max_header_size = {n} is below hyper's smallest buffer; use at least 8192"));
                    DEFAULT_MAX_HEADER_SIZE
                }
                Some(n) => n,
                None => DEFAULT_MAX_HEADER_SIZE,
            };
            if let (Some(bind), Some(protocol), Some(upstream)) = (bind, protocol, upstream) {
                listeners.push(Listener {
                    name: l.name.clone(),
                    bind,
                    protocol,
                    certificates: l.certificates.clone(),
                    upstream,
                    routes,
                    strict_sni: l.strict_sni,
                    tls13_only,
                    session_resumption: l.session_resumption.unwrap_or(true),
                    max_connections,
                    handshake_timeout,
                    header_timeout,
                    idle_timeout,
                    upstream_connect_timeout,
                    upstream_timeout,
                    max_header_size,
                });
            }
        }
        if raw.listeners.is_empty() {
            problems
                .push("no [[listener]]: add one with name, bind, certificates and upstream".into());
        }
        let log_format = match raw.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push(format!(
                    "log_format = \"{other}\" is not supported; use \"text\" or \"json\""
                ));
                LogFormat::Text
            }
        };
        let admin = match &raw.admin {
            Some(RawAdmin {
                enabled: Some(false),
                ..
            }) => None,
            other => {
                let listen = other
                    .as_ref()
                    .and_then(|a| a.listen.as_deref())
                    .unwrap_or(DEFAULT_ADMIN_LISTEN);
                let token_file = other
                    .as_ref()
                    .and_then(|a| a.token_file.as_deref())
                    .map(resolve);
                match listen.parse::<SocketAddr>() {
                    Ok(addr) if !addr.ip().is_loopback() && token_file.is_none() => {
                        problems.push(format!(
                            "[admin] listen = \"{listen}\" is not a loopback address; set `token_file` so only holders of the token can reload, or listen on 127.0.0.1"
                        ));
                        None
                    }
                    Ok(addr) => Some(Admin {
                        listen: addr,
                        token_file,
                    }),
                    Err(_) => {
                        problems.push(format!(
                            "[admin] listen = \"{listen}\" is not an address; write IP:PORT, e.g. \"127.0.0.1:9900\""
                        ));
                        None
                    }
                }
            }
        };
        let upstream_tls = match &raw.upstream_tls {
            Some(t) => UpstreamTlsGlobal {
                ca_file: t.ca_file.as_deref().map(resolve),
                use_system_roots: t.use_system_roots,
            },
            None => UpstreamTlsGlobal::default(),
        };
        let shutdown_timeout = match raw.shutdown_timeout {
            Some(s) => Duration::from_secs(s),
            None => DEFAULT_SHUTDOWN_TIMEOUT,
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
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            workers,
            state_dir,
            internal,
            pid_file: raw.pid_file.as_deref().map(resolve),
            shutdown_timeout,
            log_format,
            access_log: raw.access_log,
            metrics: raw.metrics.unwrap_or(true),
            admin,
            upstream_tls,
            certificates,
            listeners,
        })
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
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/gatehouse/gatehouse.toml"), text)
    }

    const GOOD: &str = r#"
        state_dir = "state"
        [[certificate]]
        name = "portal"
        cert = "certs/portal.crt"
        key = "/abs/portal.key"
        [[certificate]]
        name = "engine"
        pkcs12 = "engine.pfx"
        password_file = "engine.pass"
        [[listener]]
        name = "portal"
        bind = "127.0.0.1:8443"
        certificates = ["portal", "engine"]
        upstream = "http://127.0.0.1:8080"
        [[listener.route]]
        server_name = "Engine.Example.com"
        upstream = "http://127.0.0.1:8081"
    "#;

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let c = parse(GOOD).expect("good config");
        assert_eq!(c.state_dir, PathBuf::from("/etc/gatehouse/state"));
        match &c.certificates[0].source {
            Source::Files { cert, key, .. } => {
                assert_eq!(cert, &PathBuf::from("/etc/gatehouse/certs/portal.crt"));
                assert_eq!(key, &PathBuf::from("/abs/portal.key"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.listeners[0].routes[0].server_name, "engine.example.com");
        assert_eq!(c.listeners[0].handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_key_value_and_fix() {
        let err = parse(
            r#"
            [[certificate]]
            name = "portal"
            cert = "a.crt"
            [[listener]]
            name = "portal"
            bind = "443"
            protocol = "udp"
            certificates = ["engine"]
            upstream = "ftp://x"
            min_tls_version = "1.1"
        "#,
        )
        .expect_err("bad config");
        let msg = err.to_string();
        for expected in [
            "`cert` needs `key`",
            "bind = \"443\" is not an address",
            "protocol = \"udp\" is not supported",
            "certificate \"engine\" is not defined; define it in a [[certificate]] block or remove it from certificates",
            "upstream = \"ftp://x\"",
            "min_tls_version = \"1.1\"",
        ] {
            assert!(msg.contains(expected), "missing {expected:?} in:\n{msg}");
        }
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let c = Config::parse(
            Path::new("/etc/gatehouse/gatehouse.toml"),
            include_str!("../../deploy/gatehouse.toml"),
        )
        .expect("deploy/gatehouse.toml must stay valid");
        assert_eq!(c.listeners.len(), 2);
    }

    #[test]
    fn admin_defaults_to_loopback_and_refuses_other_binds_without_a_token() {
        let c = parse(GOOD).expect("good config");
        assert_eq!(
            c.admin.as_ref().map(|a| a.listen.to_string()).as_deref(),
            Some(DEFAULT_ADMIN_LISTEN)
        );
        let err = parse(&format!("{GOOD}\n[admin]\nlisten = \"0.0.0.0:9900\"\n"))
            .expect_err("non-loopback admin");
        assert!(err.to_string().contains("token_file"), "{err}");
        let c = parse(&format!(
            "{GOOD}\n[admin]\nlisten = \"0.0.0.0:9900\"\ntoken_file = \"t\"\n"
        ))
        .expect("with a token");
        assert_eq!(
            c.admin.unwrap().token_file,
            Some(PathBuf::from("/etc/gatehouse/t"))
        );
        assert!(
            parse(&format!("{GOOD}\n[admin]\nenabled = false\n"))
                .unwrap()
                .admin
                .is_none()
        );
    }

    #[test]
    fn upstream_tls_keys_are_checked() {
        let tls = GOOD.replace("http://127.0.0.1:8080", "https://10.0.0.5:8443")
            .replace("certificates = [\"portal\", \"engine\"]", "certificates = [\"portal\", \"engine\"]\nupstream_server_name = \"engine.internal\"\nupstream_protocol = \"http2\"\nupstream_ca_file = \"ca.pem\"");
        let c = parse(&tls).expect("TLS upstream options");
        let o = &c.listeners[0].upstream.options;
        assert_eq!(o.server_name.as_deref(), Some("engine.internal"));
        assert_eq!(o.protocol, UpstreamProtocol::Http2);
        assert_eq!(o.ca_file, Some(PathBuf::from("/etc/gatehouse/ca.pem")));

        let plain = GOOD.replace(
            "certificates = [\"portal\", \"engine\"]",
            "certificates = [\"portal\", \"engine\"]\nupstream_insecure_skip_verify = true\nupstream_client_cert = \"c.pem\"",
        );
        let msg = parse(&plain)
            .expect_err("TLS keys on a plain upstream")
            .to_string();
        assert!(
            msg.contains("upstream_insecure_skip_verify applies to TLS upstreams"),
            "{msg}"
        );
        assert!(
            msg.contains("upstream_client_cert and upstream_client_key go together"),
            "{msg}"
        );
    }

    #[test]
    fn workers_default_to_one_per_core_and_zero_is_refused() {
        assert_eq!(parse(GOOD).expect("good").workers, default_workers());
        let two = format!("workers = 2\n{GOOD}");
        assert_eq!(parse(&two).expect("two workers").workers, 2);
        let err = parse(&format!("workers = 0\n{GOOD}")).expect_err("no worker");
        assert!(
            err.to_string()
                .contains("workers = 0 is out of range; give 1 to 1024"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse(&GOOD.replace("state_dir", "stat_dir")).expect_err("typo");
        assert!(err.to_string().contains("stat_dir"), "{err}");
    }

    #[test]
    fn upstream_scheme_must_fit_the_protocol() {
        let err = parse(&GOOD.replace(
            "bind = \"127.0.0.1:8443\"",
            "bind = \"127.0.0.1:8443\"\nprotocol = \"tcp\"",
        ))
        .expect_err("http upstream on tcp listener");
        assert!(
            err.to_string().contains("does not fit protocol \"tcp\""),
            "{err}"
        );
    }
}
