//! Upstream connections that start with a PROXY protocol header (`upstream_proxy_protocol`
//! on an HTTP listener or route). The header names one client, so such a connection may
//! carry only that client connection's requests: each client connection keeps its own
//! ([`Private`]), closed when it ends. HAProxy marks such connections private the same way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Uri;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower_service::Service;

use super::{BoxError, Conns};

/// One client connection's own connections to an upstream that is sent a PROXY protocol
/// header, and that header (built once, when the client connected).
pub struct Private {
    pub(super) header: Box<[u8]>,
    pub(super) conns: Conns,
}

impl Private {
    pub fn new(header: Vec<u8>) -> Self {
        Self {
            header: header.into(),
            conns: Arc::new([Mutex::default()]),
        }
    }
}

/// How a pool opens connections that start with the header: TCP, the header, then TLS for
/// an `https://` upstream. (hyper-rustls's connector does TCP and TLS in one step, with no
/// place for bytes between them.)
pub struct SendsHeader {
    /// The same TCP connector (connect timeout, nodelay) as the pool's shared connections.
    pub http: HttpConnector,
    /// For `https://`: the pool's TLS client (ALPN included) and the name it verifies.
    pub tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// The most the TLS handshake may take (`upstream_connect_timeout`).
    pub tls_timeout: Duration,
}

impl SendsHeader {
    pub(super) async fn connect(
        &self,
        to: &Uri,
        private: &Private,
    ) -> Result<MaybeHttpsStream<TokioIo<TcpStream>>, BoxError> {
        let mut tcp = self.http.clone().call(to.clone()).await?;
        tcp.inner_mut().write_all(&private.header).await?;
        let Some((connector, name)) = &self.tls else {
            return Ok(MaybeHttpsStream::Http(tcp));
        };
        let handshake = connector.connect(name.clone(), TokioIo::new(tcp));
        match tokio::time::timeout(self.tls_timeout, handshake).await {
            Ok(tls) => Ok(MaybeHttpsStream::from(tls?)),
            Err(_) => Err(format!("TLS handshake not done within {:?}", self.tls_timeout).into()),
        }
    }
}
