//! How an upstream's certificate is judged: the verifiers (the configured trust, and the
//! explicit opt-out), and what a refusal says to the operator.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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
pub(super) struct UpstreamVerifier {
    /// `None` when no certificate could be a trust anchor.
    pub(super) roots: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// The certificates of `upstream_ca_file`, trusted when presented as they are.
    pub(super) exact: Vec<CertificateDer<'static>>,
    pub(super) pins: Vec<[u8; 32]>,
    /// Checks the handshake signatures, as for any certificate.
    pub(super) signatures: InsecureVerifier,
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
