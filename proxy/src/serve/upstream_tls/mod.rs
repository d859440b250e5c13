//! Gatehouse as a TLS client of its upstreams: which roots it trusts, which name it
//! verifies, the client certificate it presents, and the explicit opt-out.
//!
//! Built when the configuration is loaded and again on every reload (trust files and
//! client certificates reload with the served certificates).
//!
//! # Layout
//! - `verify`: the verifiers and the sentences a refusal is logged with.

mod verify;

pub use self::verify::InsecureVerifier;
use self::verify::UpstreamVerifier;
pub(crate) use self::verify::{explain, is_verify_failure, rustls_error};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use certstore::{CertSpec, Intermediates, LoadError, LoadedCert, Purpose, Source, Timestamp};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};

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
    #[error("upstream {upstream}: cannot set up certificate verification: {detail}")]
    Verifier { upstream: String, detail: String },
    #[error("upstream {upstream}: \"{name}\" is not a valid name to verify")]
    ServerName { upstream: String, name: String },
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
        // Per upstream: replaces the set. A certificate that cannot be a trust anchor (a
        // v1 self-signed one) is still trusted when the upstream presents it as it is.
        roots.add_parsable_certificates(ca_certs(upstream, path)?);
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

/// What verifies one upstream: its roots, its `upstream_ca_file` certificates as
/// presented, its pins.
fn verifier(
    upstream: &Upstream,
    global: &UpstreamTlsGlobal,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<UpstreamVerifier, UpstreamTlsError> {
    let exact = match &upstream.options.ca_file {
        Some(path) => ca_certs(upstream, path)?,
        None => Vec::new(),
    };
    let roots = roots(upstream, global)?;
    let roots = if roots.is_empty() {
        None
    } else {
        let built = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| UpstreamTlsError::Verifier {
            upstream: upstream.original.clone(),
            detail: e.to_string(),
        })?;
        Some(built)
    };
    Ok(UpstreamVerifier {
        roots,
        exact,
        pins: upstream.options.pin_sha256.clone(),
        signatures: InsecureVerifier(provider),
    })
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
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier(upstream, global, provider)?))
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
                ocsp: None,
            };
            let loaded =
                LoadedCert::load_for(&spec, now, &Intermediates::default(), Purpose::Client)
                    .map_err(|source| UpstreamTlsError::ClientCert {
                        upstream: upstream.original.clone(),
                        source,
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
