//! Which upstream a connection goes to — by the TLS server name, else the listener's
//! upstream — and the client that reaches it. Rebuilt on reload (trust files and client
//! certificates included) and swapped atomically; looked up once per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use certstore::Timestamp;
use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::ServerName;

use super::pool::{Private, SendsHeader, UpstreamPool};
use crate::config::upstream::{Upstream, UpstreamProtocol};
use crate::config::{Listener, Protocol, UpstreamTlsGlobal};
use crate::serve::proxy_protocol;
use crate::serve::upstream_tls::{self, UpstreamTlsError};

/// What a `tls://` upstream needs to connect.
pub struct TlsUpstream {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

/// One upstream as the forwarders use it.
pub struct Target {
    pub upstream: Upstream,
    /// For HTTP listeners: the connections requests reach it on.
    pub http: Option<UpstreamPool>,
    /// For TCP listeners with a `tls://` upstream.
    pub tls: Option<TlsUpstream>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("upstream", &self.upstream.original)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// For an HTTP upstream sent a PROXY protocol header: the upstream connections of the
    /// connection from `client`, with the header naming it and `local` (where it
    /// connected), built once. `None` for every other upstream.
    pub fn private_for(
        &self,
        client: SocketAddr,
        local: impl FnOnce() -> std::io::Result<SocketAddr>,
    ) -> Option<Private> {
        let version = self.upstream.options.proxy_protocol?;
        if !self.http.as_ref()?.sends_header() {
            return None;
        }
        let local = local().unwrap_or(client);
        Some(Private::new(proxy_protocol::header(version, client, local)))
    }

    fn build(
        listener: &Listener,
        upstream: &Upstream,
        global: &UpstreamTlsGlobal,
        workers: usize,
        now: Timestamp,
    ) -> Result<Self, UpstreamTlsError> {
        let tls_config = if upstream.kind.is_tls() {
            Some(upstream_tls::client_config(upstream, global, now)?)
        } else {
            None
        };
        match listener.protocol {
            Protocol::Http => Ok(Self {
                upstream: upstream.clone(),
                http: Some(http_pool(listener, upstream, tls_config, workers)?),
                tls: None,
            }),
            Protocol::Tcp => Ok(Self {
                upstream: upstream.clone(),
                http: None,
                tls: match tls_config {
                    Some(config) => Some(TlsUpstream {
                        connector: tokio_rustls::TlsConnector::from(config),
                        server_name: upstream_tls::server_name(upstream)?,
                    }),
                    None => None,
                },
            }),
        }
    }
}

/// The connections of an HTTP listener to `upstream`, over TLS with `tls_config` for
/// `https://`.
fn http_pool(
    listener: &Listener,
    upstream: &Upstream,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    workers: usize,
) -> Result<UpstreamPool, UpstreamTlsError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(listener.upstream_connect_timeout));
    http.set_nodelay(true);
    let protocol = upstream.options.protocol;
    let sends_header = match upstream.options.proxy_protocol {
        None => None,
        Some(_) => Some(SendsHeader {
            http: http.clone(),
            tls: match &tls_config {
                Some(c) => {
                    let mut config = (**c).clone();
                    config.alpn_protocols = alpn(protocol);
                    Some((
                        tokio_rustls::TlsConnector::from(Arc::new(config)),
                        upstream_tls::server_name(upstream)?,
                    ))
                }
                None => None,
            },
            tls_timeout: listener.upstream_connect_timeout,
        }),
    };
    let config = match tls_config {
        Some(c) => Arc::unwrap_or_clone(c),
        // Plain http:// never uses it; the connector wants one all the same.
        None => rustls::ClientConfig::builder_with_provider(certstore::provider().clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| UpstreamTlsError::Rustls {
                upstream: upstream.original.clone(),
                source,
            })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut builder = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    if upstream.options.server_name.is_some() {
        builder = builder.with_server_name_resolver(FixedServerNameResolver::new(
            upstream_tls::server_name(upstream)?,
        ));
    }
    // ALPN offers what the upstream may speak (as `alpn` below); plain http:// speaks
    // HTTP/1.1 unless configured for HTTP/2 (prior knowledge).
    let connector = match protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(http),
        UpstreamProtocol::Auto => builder.enable_all_versions().wrap_connector(http),
    };
    Ok(UpstreamPool::new(
        connector,
        upstream.uri.clone(),
        protocol == UpstreamProtocol::Http2,
        listener.upstream_idle_timeout,
        workers,
        sends_header,
    ))
}

/// The ALPN protocols hyper-rustls's connector offers for `protocol`, for the connections
/// Gatehouse opens itself: none for HTTP/1.1 only, as it does.
fn alpn(protocol: UpstreamProtocol) -> Vec<Vec<u8>> {
    match protocol {
        UpstreamProtocol::Http1 => Vec::new(),
        UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    }
}

/// A listener's upstreams.
#[derive(Debug)]
pub struct RouteTable {
    default: Arc<Target>,
    by_name: HashMap<String, Arc<Target>>,
}

impl RouteTable {
    /// Builds every upstream's client, HTTP/1.1 pools with an idle stack for each of
    /// `workers`; fails if a trust file or client certificate does not load (the caller keeps
    /// the previous table).
    pub fn build(
        listener: &Listener,
        global: &UpstreamTlsGlobal,
        workers: usize,
        now: Timestamp,
    ) -> Result<Self, UpstreamTlsError> {
        let mut by_name = HashMap::new();
        for r in &listener.routes {
            by_name.insert(
                r.server_name.clone(),
                Arc::new(Target::build(listener, &r.upstream, global, workers, now)?),
            );
        }
        Ok(Self {
            default: Arc::new(Target::build(
                listener,
                &listener.upstream,
                global,
                workers,
                now,
            )?),
            by_name,
        })
    }

    pub fn pick(&self, server_name: Option<&str>) -> &Arc<Target> {
        server_name
            .and_then(|n| self.by_name.get(n))
            .unwrap_or(&self.default)
    }

    /// Whether any server name has its own upstream.
    pub fn has_routes(&self) -> bool {
        !self.by_name.is_empty()
    }

    /// Every upstream of the table.
    pub fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        std::iter::once(&self.default.upstream).chain(self.by_name.values().map(|t| &t.upstream))
    }
}

/// A listener's routes, replaced on reload.
pub type Routes = Arc<ArcSwap<RouteTable>>;
