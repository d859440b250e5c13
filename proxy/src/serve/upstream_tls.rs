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
    #[error("upstream {upstream}: cannot set up certificate verification: {detail}")]
    Verifier { upstream: String, detail: String },
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

/// Verifies an upstream the way an operator configured trust for it: by the roots (webpki,
/// with the name), or by a certificate in `upstream_ca_file` that the upstream presents
/// itself, byte for byte (the browser "exception" for a self-signed appliance
/// certificate, which `openssl req -x509` marks as a CA), with the name still checked, or by
/// an `upstream_pin_sha256` key.
#[derive(Debug)]
struct UpstreamVerifier {
    /// `None` when no certificate could be a trust anchor.
    roots: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// The certificates of `upstream_ca_file`, trusted when presented as they are.
    exact: Vec<CertificateDer<'static>>,
    pins: Vec<[u8; 32]>,
    /// Checks the handshake signatures, as for any certificate.
    signatures: InsecureVerifier,
}

/// The upstream's key is not one `upstream_pin_sha256` lists.
#[derive(Debug, thiserror::Error)]
#[error(
    "the upstream's key is sha256//{presented}, which upstream_pin_sha256 does not list; if the upstream's key changed on purpose, pin the new one"
)]
pub(crate) struct PinMismatch {
    presented: String,
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.pins.is_empty() {
            let digest = certstore::spki_sha256(end_entity.as_ref());
            if digest.is_some_and(|d| self.pins.contains(&d)) {
                return Ok(ServerCertVerified::assertion());
            }
            use base64::Engine;
            let presented = digest
                .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
                .unwrap_or_else(|| "(unreadable)".into());
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                    presented,
                }))),
            ));
        }
        if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        match &self.roots {
            Some(roots) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
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

/// A TLS failure with an upstream as a sentence that says what to do: the name it
/// expected, the issuer it could not find, the key it got.
pub(crate) fn explain(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = err else {
        return match err {
            rustls::Error::NoCertificatesPresented => {
                "the upstream presented no certificate; is it a TLS server?".into()
            }
            other => format!("the TLS handshake with the upstream failed: {other}"),
        };
    };
    match cert {
        C::NotValidForNameContext { expected, presented } => format!(
            "the upstream's certificate is for {} but Gatehouse expected {}: give the upstream a certificate for that name, or set upstream_server_name to a name its certificate carries",
            presented
                .iter()
                .map(|n| bare_name(n))
                .collect::<Vec<_>>()
                .join(", "),
            expected.to_str()
        ),
        C::NotValidForName => "the upstream's certificate is not for the name Gatehouse expected: set upstream_server_name to a name its certificate carries".into(),
        C::UnknownIssuer => "the upstream's certificate was issued by a CA Gatehouse does not trust: put that CA (or, for a self-signed certificate, the certificate itself) in upstream_ca_file, or pin its key with upstream_pin_sha256".into(),
        C::Expired | C::ExpiredContext { .. } => "the upstream's certificate has expired: renew it on the upstream".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "the upstream's certificate is not valid yet: check the clocks of both machines".into(),
        C::Other(other)
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            "the upstream presents a self-signed CA certificate (as `openssl req -x509` makes) that is not in upstream_ca_file: put that very certificate in upstream_ca_file, or pin its key with upstream_pin_sha256".into()
        }
        C::Other(other) => format!("the upstream's certificate was refused: {other}"),
        other => format!("the upstream's certificate was refused ({other:?})"),
    }
}

/// A name as webpki reports it (`DnsName("a.example")`, `IpAddress(192.0.2.1)`), bare.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}
