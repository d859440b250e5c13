//! Mutual TLS on a listener (`client_auth`): clients' certificates are verified against
//! `client_ca_file` and, when given, the CRLs of `client_crl_file`; what a verified client
//! presented goes to the upstream in `X-Client-Cert-*` headers.
//!
//! rustls' WebPKI verifier does the verifying; [`ClientVerifier`] holds it behind an
//! `ArcSwap` so that a reload (a new CRL, say) takes effect for the next handshake while
//! the listener's TLS configuration stays as it was built.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

pub use crate::config::ClientAuth;

/// A listener's client certificate configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientAuthError {
    #[error("client_ca_file: {0}")]
    Read(#[from] certstore::LoadError),
    #[error(
        "client_ca_file {}: no CA certificate in it; put the PEM or DER certificates of the CAs that issue your clients' certificates there",
        path.display()
    )]
    NoCa { path: PathBuf },
    #[error("client_ca_file {}: {detail}", path.display())]
    Ca { path: PathBuf, detail: String },
    #[error(
        "client_crl_file {}: {detail}; give the CRLs (PEM or DER) your CA publishes",
        path.display()
    )]
    Crl { path: PathBuf, detail: String },
}

/// Verifies clients' certificates for one listener; [`ClientVerifier::reload`] reads its
/// files again.
#[derive(Debug)]
pub struct ClientVerifier {
    config: ClientAuth,
    /// The CAs' names, sent to clients to pick a certificate: those of the CA file at start.
    hints: Vec<DistinguishedName>,
    current: ArcSwap<Arc<dyn ClientCertVerifier>>,
}

impl ClientVerifier {
    pub fn load(config: &ClientAuth) -> Result<Arc<Self>, ClientAuthError> {
        let (verifier, hints) = build(config)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            hints,
            current: ArcSwap::from_pointee(verifier),
        }))
    }

    /// Reads the CA and CRL files again; on an error the verifier in use stays.
    pub fn reload(&self) -> Result<(), ClientAuthError> {
        let (verifier, _) = build(&self.config)?;
        self.current.store(Arc::new(verifier));
        Ok(())
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.config.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current
            .load()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current.load().supported_verify_schemes()
    }
}

/// rustls' verifier for `config`, and the CAs' names.
fn build(
    config: &ClientAuth,
) -> Result<(Arc<dyn ClientCertVerifier>, Vec<DistinguishedName>), ClientAuthError> {
    let path = &config.ca_file;
    let bundle = certstore::parse_bundle(path, &certstore::read_file(path)?)?;
    if bundle.certs.is_empty() {
        return Err(ClientAuthError::NoCa { path: path.clone() });
    }
    let mut roots = RootCertStore::empty();
    for cert in bundle.certs {
        roots.add(cert.der).map_err(|e| ClientAuthError::Ca {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    }
    let hints = roots.subjects();
    let crls = match &config.crl_file {
        Some(path) => read_crls(path)?,
        None => Vec::new(),
    };
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), certstore::provider().clone())
            // The CRLs say whether a client's own certificate is revoked; one whose CA
            // has no CRL in the file is refused (as nginx does with `ssl_crl`).
            .with_crls(crls)
            .only_check_end_entity_revocation();
    if !config.required {
        builder = builder.allow_unauthenticated();
    }
    let verifier = builder.build().map_err(|e| ClientAuthError::Ca {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    Ok((verifier, hints))
}

/// The CRLs in `path`: PEM (any number) or one DER.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, ClientAuthError> {
    let bytes = certstore::read_file(path)?;
    let pem: Result<Vec<_>, _> = CertificateRevocationListDer::pem_slice_iter(&bytes).collect();
    match pem {
        Ok(crls) if !crls.is_empty() => Ok(crls),
        Ok(_) if bytes.first() == Some(&0x30) => {
            Ok(vec![CertificateRevocationListDer::from(bytes)])
        }
        Ok(_) => Err(ClientAuthError::Crl {
            path: path.to_owned(),
            detail: "no CRL in it (PEM \"X509 CRL\" blocks or one DER CRL)".into(),
        }),
        Err(e) => Err(ClientAuthError::Crl {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
    }
}

/// Who the client of a connection is, as far as mutual TLS says.
#[derive(Debug)]
pub enum ClientIdentity {
    /// The listener does not ask for client certificates.
    NotAsked,
    /// Asked (`client_auth = "optional"`), and none was presented.
    Anonymous,
    /// The certificate the client presented, verified.
    Verified(Arc<ClientCert>),
}

impl ClientIdentity {
    /// Who the client of `tls` is; `asked`: the listener has `client_auth`.
    pub fn of(tls: &rustls::ServerConnection, asked: bool) -> Self {
        if !asked {
            return Self::NotAsked;
        }
        match tls.peer_certificates() {
            Some([leaf, ..]) => {
                ClientCert::of(leaf).map_or(Self::Anonymous, |c| Self::Verified(Arc::new(c)))
            }
            _ => Self::Anonymous,
        }
    }
}

/// What a verified client's certificate says, as the headers the upstream gets; made once
/// per connection.
#[derive(Debug)]
pub struct ClientCert {
    pub subject: HeaderValue,
    pub san: HeaderValue,
    pub fingerprint: HeaderValue,
}

impl ClientCert {
    /// The client's certificate as headers; `None` when it does not parse (rustls has
    /// verified it, so it does).
    pub fn of(der: &CertificateDer<'static>) -> Option<Self> {
        let info = certstore::CertInfo::from_der(der)?;
        let san: Vec<String> = info
            .dns_names
            .iter()
            .map(|n| format!("DNS:{n}"))
            .chain(info.ip_addresses.iter().map(|a| format!("IP:{a}")))
            .collect();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
        let fingerprint: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Some(Self {
            subject: header_value(&info.subject),
            san: header_value(&san.join(", ")),
            fingerprint: header_value(&fingerprint),
        })
    }
}

/// `text` as a header value: control characters (never legal in one) become `?`.
fn header_value(text: &str) -> HeaderValue {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    HeaderValue::from_str(&clean)
        .or_else(|_| HeaderValue::from_bytes(clean.as_bytes()))
        .unwrap_or_else(|_| HeaderValue::from_static("?"))
}

const X_CLIENT_CERT_SUBJECT: HeaderName = HeaderName::from_static("x-client-cert-subject");
const X_CLIENT_CERT_SAN: HeaderName = HeaderName::from_static("x-client-cert-san");
const X_CLIENT_CERT_FINGERPRINT: HeaderName = HeaderName::from_static("x-client-cert-fingerprint");
const X_CLIENT_CERT_VERIFIED: HeaderName = HeaderName::from_static("x-client-cert-verified");

/// The `X-Client-Cert-*` headers: whatever the client sent under these names is dropped
/// (on every listener: an upstream may trust them), then, on a listener with
/// `client_auth`, what the verified certificate says, or `X-Client-Cert-Verified: NONE`.
pub fn set_headers(headers: &mut HeaderMap, client: &ClientIdentity) {
    for name in [
        X_CLIENT_CERT_SUBJECT,
        X_CLIENT_CERT_SAN,
        X_CLIENT_CERT_FINGERPRINT,
        X_CLIENT_CERT_VERIFIED,
    ] {
        headers.remove(name);
    }
    match client {
        ClientIdentity::NotAsked => {}
        ClientIdentity::Anonymous => {
            headers.insert(X_CLIENT_CERT_VERIFIED, HeaderValue::from_static("NONE"));
        }
        ClientIdentity::Verified(cert) => {
            headers.insert(X_CLIENT_CERT_VERIFIED, HeaderValue::from_static("SUCCESS"));
            headers.insert(X_CLIENT_CERT_SUBJECT, cert.subject.clone());
            headers.insert(X_CLIENT_CERT_SAN, cert.san.clone());
            headers.insert(X_CLIENT_CERT_FINGERPRINT, cert.fingerprint.clone());
        }
    }
}
