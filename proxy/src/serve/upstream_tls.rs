//! Gatehouse as a TLS client of its upstreams: which roots it trusts, which name it
//! verifies, the client certificate it presents, and the explicit opt-out.
//!
//! Built when the configuration is loaded and again on every reload (trust files and
//! client certificates reload with the served certificates).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use certstore::{CertSpec, LoadError, LoadedCert, Purpose, Source, Timestamp};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::UpstreamTlsGlobal;
use crate::config::upstream::Upstream;

/// Why an upstream's TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum UpstreamTlsError {
    #[error("upstream {upstream}: trust file {}: {source}", path.display())]
    CaFile {
        upstream: String,
        path: PathBuf,
        #[source]
        source: LoadError,
    },
    #[error("upstream {upstream}: {} holds no usable CA certificate ({detail})", path.display())]
    CaCert {
        upstream: String,
        path: PathBuf,
        detail: String,
    },
    #[error("upstream {upstream}: the operating system's trust store cannot be read: {detail}")]
    SystemRoots { upstream: String, detail: String },
    #[error("upstream {upstream}: client certificate: {source}")]
    ClientCert {
        upstream: String,
        #[source]
        source: LoadError,
    },
    #[error("upstream {upstream}: {source}")]
    Rustls {
        upstream: String,
        #[source]
        source: rustls::Error,
    },
    #[error("upstream {upstream}: \"{name}\" is not a valid name to verify")]
    ServerName { upstream: String, name: String },
}

/// Accepts any server certificate while still checking the handshake signatures. Used
/// only for `upstream_insecure_skip_verify = true`.
#[derive(Debug)]
pub struct InsecureVerifier(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for InsecureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Presents one client certificate, loaded through `certstore`.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _issuers: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn ca_certs(
    upstream: &Upstream,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let ca_error = |source| UpstreamTlsError::CaFile {
        upstream: upstream.original.clone(),
        path: path.to_owned(),
        source,
    };
    let bytes = certstore::read_file(path).map_err(ca_error)?;
    let bundle = certstore::parse_bundle(path, &bytes).map_err(ca_error)?;
    if bundle.certs.is_empty() {
        return Err(UpstreamTlsError::CaCert {
            upstream: upstream.original.clone(),
            path: path.to_owned(),
            detail: "no certificate in the file".into(),
        });
    }
    Ok(bundle.certs.into_iter().map(|c| c.der).collect())
}

fn roots(
    upstream: &Upstream,
    global: &UpstreamTlsGlobal,
) -> Result<RootCertStore, UpstreamTlsError> {
    let add = |roots: &mut RootCertStore,
               certs: Vec<CertificateDer<'static>>,
               path: &Path|
     -> Result<(), UpstreamTlsError> {
        for cert in certs {
            roots.add(cert).map_err(|e| UpstreamTlsError::CaCert {
                upstream: upstream.original.clone(),
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
        }
        Ok(())
    };
    let mut roots = RootCertStore::empty();
    if let Some(path) = &upstream.options.ca_file {
        // Per upstream: replaces the set.
        add(&mut roots, ca_certs(upstream, path)?, path)?;
        return Ok(roots);
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &global.ca_file {
        add(&mut roots, ca_certs(upstream, path)?, path)?;
    }
    if global.use_system_roots {
        let native = rustls_native_certs::load_native_certs();
        if native.certs.is_empty() && !native.errors.is_empty() {
            return Err(UpstreamTlsError::SystemRoots {
                upstream: upstream.original.clone(),
                detail: native
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    }
    Ok(roots)
}

/// The rustls client configuration for one TLS upstream.
pub(crate) fn client_config(
    upstream: &Upstream,
    global: &UpstreamTlsGlobal,
    now: Timestamp,
) -> Result<Arc<ClientConfig>, UpstreamTlsError> {
    let provider = certstore::provider().clone();
    let rustls_error = |source| UpstreamTlsError::Rustls {
        upstream: upstream.original.clone(),
        source,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?;
    let builder = if upstream.options.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(InsecureVerifier(provider)))
    } else {
        builder.with_root_certificates(roots(upstream, global)?)
    };
    // ALPN is left empty: hyper-rustls sets it from `upstream_protocol` for HTTP, and a
    // TCP pipe offers none.
    let config = match &upstream.options.client_cert {
        Some((cert, key)) => {
            let spec = CertSpec {
                name: format!("client certificate for {}", upstream.original),
                source: Source::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                    chain: None,
                },
                trust_anchors: None,
            };
            let loaded = LoadedCert::load_for(&spec, now, Purpose::Client).map_err(|source| {
                UpstreamTlsError::ClientCert {
                    upstream: upstream.original.clone(),
                    source,
                }
            })?;
            builder.with_client_cert_resolver(Arc::new(ClientCert(loaded.certified_key.clone())))
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name verified (and sent as SNI) for an upstream.
pub(crate) fn server_name(upstream: &Upstream) -> Result<ServerName<'static>, UpstreamTlsError> {
    let name = upstream
        .options
        .server_name
        .clone()
        .unwrap_or_else(|| upstream.host().to_owned());
    ServerName::try_from(name.clone()).map_err(|_| UpstreamTlsError::ServerName {
        upstream: upstream.original.clone(),
        name,
    })
}

/// The rustls error somewhere in an error's chain, for telling certificate verification
/// failures apart. hyper-rustls wraps tokio-rustls' `io::Error` in another `io::Error`,
/// whose `source()` skips the wrapped error, so wrapped I/O errors are opened explicitly.
pub(crate) fn rustls_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    /// Error chains are a handful deep; this bounds a pathological one.
    const MAX_DEPTH: usize = 16;
    fn find<'a>(
        e: &'a (dyn std::error::Error + 'static),
        depth: usize,
    ) -> Option<&'a rustls::Error> {
        if depth > MAX_DEPTH {
            return None;
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(r) = find(inner, depth + 1)
        {
            return Some(r);
        }
        e.source().and_then(|s| find(s, depth + 1))
    }
    find(err, 0)
}

/// Whether a TLS failure is the upstream's certificate not verifying.
pub(crate) fn is_verify_failure(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}
