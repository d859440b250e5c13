//! Where a listener forwards: `http://` or `https://` for HTTP listeners, `tcp://` or
//! `tls://` for TCP listeners, with the options of a TLS upstream. Parsed with `http::Uri`.

use std::fmt;
use std::path::PathBuf;

use http::uri::{Authority, Uri};

use crate::config::Protocol;
use crate::config::raw::ProxyVersion;

/// What an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    Http,
    Https,
    Tcp,
    Tls,
}

impl UpstreamKind {
    /// Whether Gatehouse speaks TLS to this upstream.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::Tls)
    }
}

/// Which HTTP versions to offer an upstream (ALPN on TLS; prior knowledge on plain HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// `h2` and `http/1.1` by ALPN on TLS; HTTP/1.1 on plain connections.
    #[default]
    Auto,
    Http1,
    Http2,
}

/// How Gatehouse, as a TLS client, talks to one upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamOptions {
    /// Replaces the trusted roots for this upstream.
    pub ca_file: Option<PathBuf>,
    /// The name to verify and send as SNI, when it differs from the address's host.
    pub server_name: Option<String>,
    /// Client certificate and key for upstreams that require mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Accept any certificate. Explicit, per upstream, warned about and exported as a metric.
    pub insecure_skip_verify: bool,
    /// SHA-256 digests of SubjectPublicKeyInfos: an upstream presenting one of these keys is
    /// trusted, whoever issued its certificate.
    pub pin_sha256: Vec<[u8; 32]>,
    pub protocol: UpstreamProtocol,
    /// A PROXY protocol header sent first on each connection (TCP listeners).
    pub proxy_protocol: Option<ProxyVersion>,
}

/// One upstream address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub kind: UpstreamKind,
    pub authority: Authority,
    /// The address as parsed (scheme and authority): what the HTTP connector connects to.
    pub uri: Uri,
    /// `host:port`, with the scheme's default port filled in, for connecting.
    pub connect_to: String,
    /// As written in the configuration, for logs.
    pub original: String,
    pub options: UpstreamOptions,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("not a URL; write it as http://HOST:PORT or tcp://HOST:PORT")]
    NotAUrl,
    #[error(
        "scheme \"{0}\" is not supported; use http:// or https:// (http listeners), tcp:// or tls:// (tcp listeners)"
    )]
    Scheme(String),
    #[error("no host; write it as SCHEME://HOST:PORT")]
    NoHost,
    #[error("tcp:// and tls:// need a port, e.g. tcp://127.0.0.1:9000")]
    NoPort,
    #[error(
        "a path is not supported here (\"{0}\"); Gatehouse forwards the request's own path: remove it"
    )]
    Path(String),
}

impl UpstreamError {
    pub fn hint_for(protocol: Protocol) -> &'static str {
        match protocol {
            Protocol::Http => "an http listener forwards to http://HOST:PORT or https://HOST:PORT",
            Protocol::Tcp => "a tcp listener forwards to tcp://HOST:PORT or tls://HOST:PORT",
        }
    }
}

impl Upstream {
    pub fn parse(value: &str) -> Result<Self, UpstreamError> {
        let uri: Uri = value.parse().map_err(|_| UpstreamError::NotAUrl)?;
        let scheme = uri.scheme_str().ok_or(UpstreamError::NotAUrl)?;
        let (kind, default_port) = match scheme {
            "http" => (UpstreamKind::Http, Some(80)),
            "https" => (UpstreamKind::Https, Some(443)),
            "tcp" => (UpstreamKind::Tcp, None),
            "tls" => (UpstreamKind::Tls, None),
            other => return Err(UpstreamError::Scheme(other.to_owned())),
        };
        let authority = uri.authority().ok_or(UpstreamError::NoHost)?.clone();
        if authority.host().is_empty() {
            return Err(UpstreamError::NoHost);
        }
        if let Some(pq) = uri.path_and_query()
            && pq.as_str() != "/"
            && !pq.as_str().is_empty()
        {
            return Err(UpstreamError::Path(pq.as_str().to_owned()));
        }
        let port = authority
            .port_u16()
            .or(default_port)
            .ok_or(UpstreamError::NoPort)?;
        Ok(Self {
            kind,
            uri: uri.clone(),
            connect_to: format!("{}:{port}", authority.host()),
            authority,
            original: value.to_owned(),
            options: UpstreamOptions::default(),
        })
    }

    /// Whether a listener of `protocol` can forward here.
    pub fn fits(&self, protocol: Protocol) -> bool {
        matches!(
            (protocol, self.kind),
            (Protocol::Http, UpstreamKind::Http | UpstreamKind::Https)
                | (Protocol::Tcp, UpstreamKind::Tcp | UpstreamKind::Tls)
        )
    }

    /// The host part, without IPv6 brackets: the default name to verify.
    pub fn host(&self) -> &str {
        let h = self.authority.host();
        h.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(h)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_and_tcp() {
        let u = Upstream::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.kind, UpstreamKind::Http);
        assert_eq!(u.connect_to, "127.0.0.1:8080");
        assert_eq!(
            Upstream::parse("http://portal.local/").unwrap().connect_to,
            "portal.local:80"
        );
        assert_eq!(
            Upstream::parse("tcp://[::1]:9000").unwrap().connect_to,
            "[::1]:9000"
        );
    }

    #[test]
    fn refuses_what_it_cannot_forward_to() {
        assert_eq!(Upstream::parse("127.0.0.1:80"), Err(UpstreamError::NotAUrl));
        assert_eq!(
            Upstream::parse("ftp://x"),
            Err(UpstreamError::Scheme("ftp".into()))
        );
        assert_eq!(Upstream::parse("tcp://x"), Err(UpstreamError::NoPort));
        assert_eq!(
            Upstream::parse("http://x/app"),
            Err(UpstreamError::Path("/app".into()))
        );
    }
}
