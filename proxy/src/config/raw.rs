//! The configuration file as written: every key, with unknown keys rejected. Values with a
//! fixed set of choices are serde enums; a value outside the set is kept as written
//! ([`Choice::Other`]) so that the check reports it with every other problem at once.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::duration::RawDuration;
use super::upstream::UpstreamProtocol;
use super::{LogFormat, Protocol};

/// A value from a fixed set, or what was written instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Choice<T> {
    Known(T),
    Other(toml::Value),
}

/// The values a key with a fixed set of choices takes, as written in the file.
pub trait Choices: Sized {
    const NAMES: &'static [&'static str];
}

impl<T: Choices> Choice<T> {
    /// The value, or a problem naming `key`, what was written and the choices.
    pub fn check(self, what: &str, key: &str, problems: &mut Vec<String>) -> Option<T> {
        match self {
            Self::Known(v) => Some(v),
            Self::Other(v) => {
                let names: Vec<String> = T::NAMES.iter().map(|n| format!("\"{n}\"")).collect();
                problems.push(format!(
                    "{what}{key} = {v} is not supported; use {}",
                    one_of(&names)
                ));
                None
            }
        }
    }
}

/// "a", "a or b", "a, b or c".
fn one_of(names: &[String]) -> String {
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The lowest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MinTlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// The PROXY protocol version Gatehouse sends an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyVersion {
    V1,
    V2,
}

/// Whether a listener asks clients for a certificate (mutual TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// Every client must present a certificate that verifies.
    Required,
    /// A client may present one; one it presents must verify.
    Optional,
}

/// Who issues a certificate that is not read from files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Issuer {
    /// Gatehouse's internal CA.
    Internal,
}

impl Choices for MinTlsVersion {
    const NAMES: &'static [&'static str] = &["1.2", "1.3"];
}
impl Choices for ProxyVersion {
    const NAMES: &'static [&'static str] = &["v1", "v2"];
}
impl Choices for ClientAuthMode {
    const NAMES: &'static [&'static str] = &["required", "optional"];
}
impl Choices for Issuer {
    const NAMES: &'static [&'static str] = &["internal"];
}
impl Choices for Protocol {
    const NAMES: &'static [&'static str] = &["http", "tcp"];
}
impl Choices for LogFormat {
    const NAMES: &'static [&'static str] = &["text", "json"];
}
impl Choices for UpstreamProtocol {
    const NAMES: &'static [&'static str] = &["auto", "http1", "http2"];
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("internal")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub state_dir: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub shutdown_timeout: Option<RawDuration>,
    /// Threads serving connections; one per core when absent.
    pub workers: Option<usize>,
    pub log_format: Option<Choice<LogFormat>>,
    #[serde(default)]
    pub access_log: bool,
    /// Export Prometheus metrics (on by default; off only to measure what they cost).
    pub metrics: Option<bool>,
    /// Reload when a file the configuration reads changes on disk.
    #[serde(default)]
    pub watch: bool,
    pub admin: Option<RawAdmin>,
    pub internal_ca: Option<RawInternalCa>,
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
    pub certificate: Option<String>,
}

/// `[internal_ca]`: what a new internal CA is made with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInternalCa {
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub validity_days: Option<i64>,
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
    /// A DER OCSP response to staple.
    pub ocsp: Option<PathBuf>,
    /// Fetch the OCSP response from the certificate's responder and keep it fresh.
    #[serde(default)]
    pub ocsp_fetch: bool,
    /// `"internal"`: issued by Gatehouse's internal CA, no files to supply.
    pub issuer: Option<Choice<Issuer>>,
    /// Names for an internal certificate (default: the host's name and FQDN).
    pub names: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: String,
    pub bind: String,
    pub protocol: Option<Choice<Protocol>>,
    #[serde(default)]
    pub certificates: Vec<String>,
    pub upstream: String,
    #[serde(default)]
    pub strict_sni: bool,
    pub min_tls_version: Option<Choice<MinTlsVersion>>,
    pub session_resumption: Option<bool>,
    /// Session ticket keys shared with other instances (80 bytes each, newest first).
    pub session_ticket_key_file: Option<PathBuf>,
    pub client_auth: Option<Choice<ClientAuthMode>>,
    pub client_ca_file: Option<PathBuf>,
    pub client_crl_file: Option<PathBuf>,
    /// Clients arrive through a load balancer that sends the PROXY protocol header.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// The addresses (CIDR) allowed to send that header.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub max_connections: Option<usize>,
    pub handshake_timeout: Option<RawDuration>,
    pub header_timeout: Option<RawDuration>,
    pub idle_timeout: Option<RawDuration>,
    pub send_timeout: Option<RawDuration>,
    pub upstream_connect_timeout: Option<RawDuration>,
    pub upstream_timeout: Option<RawDuration>,
    pub upstream_idle_timeout: Option<RawDuration>,
    pub max_header_size: Option<usize>,
    pub upstream_ca_file: Option<PathBuf>,
    pub upstream_server_name: Option<String>,
    pub upstream_client_cert: Option<PathBuf>,
    pub upstream_client_key: Option<PathBuf>,
    #[serde(default)]
    pub upstream_insecure_skip_verify: bool,
    #[serde(default)]
    pub upstream_pin_sha256: Vec<String>,
    pub upstream_protocol: Option<Choice<UpstreamProtocol>>,
    pub upstream_proxy_protocol: Option<Choice<ProxyVersion>>,
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
    #[serde(default)]
    pub upstream_pin_sha256: Vec<String>,
    pub upstream_protocol: Option<Choice<UpstreamProtocol>>,
    pub upstream_proxy_protocol: Option<Choice<ProxyVersion>>,
}

/// The `upstream_*` keys of one upstream, as written on a listener or a route.
pub struct RawUpstreamOptions<'a> {
    pub ca_file: &'a Option<PathBuf>,
    pub server_name: &'a Option<String>,
    pub client_cert: &'a Option<PathBuf>,
    pub client_key: &'a Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub pin_sha256: &'a [String],
    pub protocol: &'a Option<Choice<UpstreamProtocol>>,
    pub proxy_protocol: &'a Option<Choice<ProxyVersion>>,
}

/// `upstream_options()` for the blocks that carry the `upstream_*` keys.
macro_rules! upstream_options {
    ($($raw:ty),*) => {$(
        impl $raw {
            pub fn upstream_options(&self) -> RawUpstreamOptions<'_> {
                RawUpstreamOptions {
                    ca_file: &self.upstream_ca_file,
                    server_name: &self.upstream_server_name,
                    client_cert: &self.upstream_client_cert,
                    client_key: &self.upstream_client_key,
                    insecure_skip_verify: self.upstream_insecure_skip_verify,
                    pin_sha256: &self.upstream_pin_sha256,
                    protocol: &self.upstream_protocol,
                    proxy_protocol: &self.upstream_proxy_protocol,
                }
            }
        }
    )*};
}
upstream_options!(RawListener, RawRoute);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub use_system_roots: bool,
}
