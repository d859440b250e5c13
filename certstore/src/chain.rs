//! Order, complete and verify a certificate chain.
//!
//! The leaf is the certificate whose public key matches the private key. From it the path
//! goes upward by issuer/subject name and key identifiers; what is served is the leaf, then
//! the intermediates in path order. Self-signed roots, duplicates and certificates off the
//! path are dropped, each with a [`Warning`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::SigningKey;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use crate::error::{LoadError, Warning};
use crate::parse::{Bundle, SourcedCert, parse_bundle, read_file};
use crate::pool::{Intermediates, issued_by_known_root};
use crate::time::Timestamp;

/// A certificate with its parsed view. Borrowed from the DER it was parsed from.
pub(crate) struct Parsed<'a> {
    pub(crate) x509: X509Certificate<'a>,
    pub(crate) der: &'a CertificateDer<'static>,
    pub(crate) path: &'a Path,
}

impl<'a> Parsed<'a> {
    pub(crate) fn parse(cert: &'a SourcedCert) -> Result<Self, LoadError> {
        let (_, x509) = x509_parser::parse_x509_certificate(cert.der.as_ref()).map_err(|e| {
            LoadError::BadCertificate {
                path: cert.path.clone(),
                detail: e.to_string(),
            }
        })?;
        Ok(Self {
            x509,
            der: &cert.der,
            path: &cert.path,
        })
    }

    pub(crate) fn subject(&self) -> String {
        self.x509.subject().to_string()
    }

    fn subject_key_id(&self) -> Option<&[u8]> {
        self.x509
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(kid) => Some(kid.0),
                _ => None,
            })
    }

    fn authority_key_id(&self) -> Option<&[u8]> {
        self.x509
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|k| k.0)
                }
                _ => None,
            })
    }

    /// Whether `issuer` plausibly issued `self`: names match, and key identifiers too when
    /// both certificates carry them.
    fn issued_by(&self, issuer: &Parsed<'_>) -> bool {
        if self.x509.issuer().as_raw() != issuer.x509.subject().as_raw() {
            return false;
        }
        match (self.authority_key_id(), issuer.subject_key_id()) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        }
    }

    pub(crate) fn is_self_signed(&self) -> bool {
        self.issued_by(self)
    }
}

/// The CA certificates of `bundle` (basic constraints `cA`): its intermediates and roots,
/// never a leaf. What a renewal that came without its intermediates can be completed from.
/// Certificates that do not parse are left out: the bundle was read before.
pub fn ca_certs(bundle: &Bundle) -> Vec<SourcedCert> {
    bundle
        .certs
        .iter()
        .filter(|c| Parsed::parse(c).is_ok_and(|p| p.x509.is_ca()))
        .cloned()
        .collect()
}

/// A chain put in serving order.
pub(crate) struct Ordered {
    /// Indices into the certificates: leaf first, then intermediates.
    pub(crate) path: Vec<usize>,
    /// The indices on the path that came from the pool, not the files.
    pub(crate) completed: Vec<usize>,
    pub(crate) warnings: Vec<Warning>,
}

/// Drops exact duplicates (with a warning each), keeping file order.
pub(crate) fn dedup<'a>(
    certs: &'a [SourcedCert],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Parsed<'a>>, LoadError> {
    let mut out: Vec<Parsed<'a>> = Vec::with_capacity(certs.len());
    for cert in certs {
        if out.iter().any(|p| p.der.as_ref() == cert.der.as_ref()) {
            let parsed = Parsed::parse(cert)?;
            warnings.push(Warning::DroppedDuplicate {
                subject: parsed.subject(),
            });
            continue;
        }
        out.push(Parsed::parse(cert)?);
    }
    Ok(out)
}

/// Appends the pool's certificates that are not among `certs` already.
pub(crate) fn with_pool<'a>(certs: &mut Vec<Parsed<'a>>, pool: &'a Intermediates) {
    for cert in pool.certs() {
        if certs.iter().any(|p| p.der.as_ref() == cert.der.as_ref()) {
            continue;
        }
        if let Ok(parsed) = Parsed::parse(cert) {
            certs.push(parsed);
        }
    }
}

/// Builds the serving path from the leaf at `leaf` upward. The first `given` certificates
/// came from the files; those after are the pool's, used only where the files end.
pub(crate) fn order(certs: &[Parsed<'_>], leaf: usize, given: usize) -> Ordered {
    let mut warnings = Vec::new();
    let mut path = vec![leaf];
    let mut completed = Vec::new();
    let mut used = vec![false; certs.len()];
    used[leaf] = true;
    let mut complete = certs[leaf].is_self_signed();
    let mut current = leaf;
    while !complete {
        // Lowest index first: the files' own certificates before the pool's.
        let next = (0..certs.len()).find(|&i| !used[i] && certs[current].issued_by(&certs[i]));
        match next {
            Some(i) => {
                used[i] = true;
                if certs[i].is_self_signed() {
                    if i < given {
                        warnings.push(Warning::DroppedRoot {
                            subject: certs[i].subject(),
                        });
                    }
                    complete = true;
                } else {
                    path.push(i);
                    if i >= given {
                        completed.push(i);
                    }
                    current = i;
                }
            }
            // A chain that reaches an intermediate and stops below its root is the normal
            // case (clients hold the roots): only a leaf without its issuer is incomplete,
            // unless a root clients hold issued it directly.
            None => {
                if current == leaf && !issued_by_known_root(certs[leaf].x509.issuer().as_raw()) {
                    warnings.push(Warning::IncompleteChain {
                        missing_issuer: certs[current].x509.issuer().to_string(),
                    });
                }
                break;
            }
        }
    }
    for (i, cert) in certs.iter().enumerate().take(given) {
        if !used[i] {
            warnings.push(Warning::DroppedUnrelated {
                subject: cert.subject(),
            });
        }
    }
    if !path.is_sorted() {
        warnings.insert(0, Warning::Reordered);
    }
    Ordered {
        path,
        completed,
        warnings,
    }
}

/// Picks the leaf of a bundle that has no (matching) key, for `certs inspect`: the first
/// certificate that issued none of the others, preferring one that is not a CA.
pub(crate) fn guess_leaf(certs: &[Parsed<'_>]) -> Option<usize> {
    let issues_none = |i: usize| {
        !certs
            .iter()
            .enumerate()
            .any(|(j, c)| j != i && c.issued_by(&certs[i]))
    };
    (0..certs.len())
        .find(|&i| issues_none(i) && !certs[i].x509.is_ca())
        .or_else(|| (0..certs.len()).find(|&i| issues_none(i)))
}

/// The private key, loaded by the crypto provider, and the certificate it belongs to.
pub(crate) struct KeyPair {
    pub(crate) signing_key: Arc<dyn SigningKey>,
    pub(crate) leaf: usize,
    /// Index of the matching key in the bundle's keys.
    pub(crate) key: usize,
}

/// Finds the certificate that matches one of the bundle's keys.
pub(crate) fn match_key(
    bundle: &Bundle,
    certs: &[Parsed<'_>],
    provider: &CryptoProvider,
) -> Result<KeyPair, LoadError> {
    let mut first_error = None;
    for (key_index, key) in bundle.keys.iter().enumerate() {
        let signing_key = match provider.key_provider.load_private_key(key.der.clone_key()) {
            Ok(k) => k,
            Err(e) => {
                first_error.get_or_insert(LoadError::UnsupportedKey {
                    path: key.path.clone(),
                    detail: e.to_string(),
                });
                continue;
            }
        };
        let Some(spki) = signing_key.public_key() else {
            continue;
        };
        let matching = certs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.x509.public_key().raw == spki.as_ref())
            .map(|(i, _)| i);
        // A CA certificate may share the key only in odd setups; prefer the end entity.
        let leaf = matching
            .clone()
            .find(|&i| !certs[i].x509.is_ca())
            .or_else(|| matching.clone().next());
        if let Some(leaf) = leaf {
            return Ok(KeyPair {
                signing_key,
                leaf,
                key: key_index,
            });
        }
    }
    Err(first_error.unwrap_or_else(|| {
        let mut cert_paths: Vec<PathBuf> = Vec::new();
        for c in &bundle.certs {
            if !cert_paths.contains(&c.path) {
                cert_paths.push(c.path.clone());
            }
        }
        LoadError::KeyMismatch {
            key_path: bundle
                .keys
                .first()
                .map(|k| k.path.clone())
                .unwrap_or_default(),
            cert_paths,
        }
    }))
}

/// Reads a trust anchor file (PEM or DER certificates).
pub(crate) fn load_anchors(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let bundle = parse_bundle(path, &read_file(path)?)?;
    if bundle.certs.is_empty() {
        return Err(LoadError::TrustAnchors {
            path: path.to_owned(),
            detail: "no certificate in the file".into(),
        });
    }
    Ok(bundle.certs.into_iter().map(|c| c.der).collect())
}

/// Verifies the served chain to the anchors with webpki: signatures, validity, serverAuth.
pub(crate) fn verify_to_anchors(
    chain: &[CertificateDer<'static>],
    anchors_path: &Path,
    anchors: &[CertificateDer<'static>],
    provider: &CryptoProvider,
    now: Timestamp,
    subject: &str,
) -> Result<(), LoadError> {
    let trust_anchors = anchors
        .iter()
        .map(|der| webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::TrustAnchors {
            path: anchors_path.to_owned(),
            detail: e.to_string(),
        })?;
    let untrusted = |detail: String| LoadError::Untrusted {
        anchors: anchors_path.to_owned(),
        subject: subject.to_owned(),
        detail,
    };
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| untrusted(e.to_string()))?;
    let secs = u64::try_from(now.unix_seconds()).unwrap_or(0);
    leaf.verify_for_usage(
        provider.signature_verification_algorithms.all,
        &trust_anchors,
        &chain[1..],
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| untrusted(format!("{e:?}")))
}
