//! TLS upstreams: HTTPS answering as [`super::http_upstream`] does (with the client
//! certificate it was shown), and a TLS echo.

use std::net::SocketAddr;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::{MAX_SLEEP, echo_after_eof, handle, spawn_server};

/// What a TLS upstream serves and whom it accepts.
pub struct TlsUpstreamSpec {
    /// Leaf then intermediates, PEM.
    pub chain_pem: String,
    pub key_pem: String,
    /// When set, clients must present a certificate issued by this CA.
    pub client_ca: Option<rustls_pki_types::CertificateDer<'static>>,
}

fn tls_acceptor(spec: &TlsUpstreamSpec) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = certstore::provider().clone();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(spec.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("upstream chain");
    let key = PrivateKeyDer::from_pem_slice(spec.key_pem.as_bytes()).expect("upstream key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match &spec.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.clone()).expect("client CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).expect("upstream cert");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// An HTTPS upstream (HTTP/1.1 and HTTP/2 by ALPN) answering like [`http_upstream`], plus a
/// `x-test-tls-client` line naming the client certificate's subject (or `none`).
pub fn https_upstream(name: &'static str, spec: &TlsUpstreamSpec) -> SocketAddr {
    let acceptor = tls_acceptor(spec);
    spawn_server(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let peer = tcp.peer_addr().map_or(0, |a| a.port());
            let Ok(Ok(tls)) = tokio::time::timeout(MAX_SLEEP, acceptor.accept(tcp)).await else {
                return;
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first().cloned())
                .and_then(|c| {
                    x509_parser::parse_x509_certificate(&c)
                        .ok()
                        .map(|(_, x)| x.subject().to_string())
                })
                .unwrap_or_else(|| "none".into());
            let client =
                http::HeaderValue::from_str(&client).unwrap_or(http::HeaderValue::from_static("?"));
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.headers_mut()
                    .insert("x-test-tls-client", client.clone());
                handle(name, peer, req)
            });
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
        }
    })
}

/// A TLS upstream that behaves as [`tcp_echo_after_eof`].
pub fn tls_echo_after_eof(spec: &TlsUpstreamSpec) -> SocketAddr {
    let acceptor = tls_acceptor(spec);
    spawn_server(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(Ok(tls)) = tokio::time::timeout(MAX_SLEEP, acceptor.accept(tcp)).await {
                echo_after_eof(tls).await;
            }
        }
    })
}
