//! One loaded certificate: what rustls serves and what operators are told about it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;

use crate::chain::{self, Parsed};
use crate::error::{LoadError, Warning};
use crate::info::CertInfo;
use crate::ocsp::{self, Stapling};
use crate::parse::{self, Bundle};
use crate::pool::Intermediates;
use crate::source::CertSpec;
use crate::time::Timestamp;
use crate::validate::{self, Purpose};

/// The crypto provider every key is loaded with: aws-lc-rs, rustls' default, with RSA
/// keys preferring SHA-256 (see `sign`).
pub fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        Arc::new(CryptoProvider {
            key_provider: &crate::sign::Keys,
            ..rustls::crypto::aws_lc_rs::default_provider()
        })
    })
}

/// Which of the bundle's keys belongs to one of its certificates (for writing the key back
/// out when installing).
pub fn matching_key(bundle: &Bundle) -> Result<usize, LoadError> {
    let mut warnings = Vec::new();
    let certs = chain::dedup(&bundle.certs, &mut warnings)?;
    chain::match_key(bundle, &certs, provider()).map(|pair| pair.key)
}

/// A certificate ready to serve. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct LoadedCert {
    /// The configured name (`[[certificate]] name`).
    pub name: String,
    /// Chain in serving order and the signing key, built once at load.
    pub certified_key: Arc<CertifiedKey>,
    /// What operators see of each served certificate, leaf first.
    pub chain: Vec<CertInfo>,
    pub warnings: Vec<Warning>,
    /// Intermediates the files lacked, served from the pool of known intermediates.
    pub completed: Vec<Completion>,
    /// The files it was read from.
    pub sources: Vec<PathBuf>,
    pub loaded_at: Timestamp,
    /// The OCSP response configured for it (`ocsp`): stapled, or refused and why.
    pub ocsp: Option<Stapling>,
}

/// An intermediate a chain was completed with, and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub subject: String,
    pub path: PathBuf,
}

impl std::fmt::Display for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "completed from {} (intermediate \"{}\")",
            self.path.display(),
            self.subject
        )
    }
}

impl LoadedCert {
    /// Reads, assembles and validates one configured certificate, completing its chain
    /// from `pool` where its files lack an intermediate.
    pub fn load(spec: &CertSpec, now: Timestamp, pool: &Intermediates) -> Result<Self, LoadError> {
        Self::load_for(spec, now, pool, Purpose::Server)
    }

    /// Loads a certificate for `purpose` (a client certificate needs no SAN).
    pub fn load_for(
        spec: &CertSpec,
        now: Timestamp,
        pool: &Intermediates,
        purpose: Purpose,
    ) -> Result<Self, LoadError> {
        let bundle = parse::load_source(&spec.source)?;
        let material = Material {
            name: &spec.name,
            bundle: &bundle,
            trust_anchors: spec.trust_anchors.as_deref(),
            pool,
        };
        let mut cert = material.assemble(spec.source.paths(), now, purpose)?;
        if let Some(path) = &spec.ocsp {
            cert.staple(path, now);
        }
        Ok(cert)
    }

    /// Staples the OCSP response in `path` when it checks out for this chain; otherwise
    /// serves without one, with a warning saying why.
    pub(crate) fn staple(&mut self, path: &Path, now: Timestamp) {
        let chain = &self.certified_key.cert;
        match ocsp::load(path, &chain[0], chain.get(1), now) {
            Ok((der, staple)) => {
                let mut key = (*self.certified_key).clone();
                key.ocsp = Some(der);
                self.certified_key = Arc::new(key);
                self.ocsp = Some(Stapling::Stapled(staple));
            }
            Err(reason) => {
                self.warnings.push(Warning::OcspRefused {
                    path: path.to_owned(),
                    reason: reason.to_string(),
                });
                self.ocsp = Some(Stapling::Refused {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
    }

    /// Assembles and validates material already read (from files or from memory).
    pub fn from_bundle(
        name: &str,
        bundle: &Bundle,
        trust_anchors: Option<&Path>,
        sources: Vec<PathBuf>,
        now: Timestamp,
        pool: &Intermediates,
    ) -> Result<Self, LoadError> {
        let material = Material {
            name,
            bundle,
            trust_anchors,
            pool,
        };
        material.assemble(sources, now, Purpose::Server)
    }

    /// Whether the leaf is served with the certificate that issued it (or verified to a
    /// configured trust anchor): no client lacks an intermediate.
    pub fn chain_complete(&self) -> bool {
        !self
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::IncompleteChain { .. }))
    }

    /// The leaf certificate's details.
    pub fn leaf(&self) -> &CertInfo {
        &self.chain[0]
    }

    /// Whether `other` serves exactly the same chain (and so the same key) and staple.
    pub fn same_chain(&self, other: &LoadedCert) -> bool {
        self.certified_key.cert == other.certified_key.cert
            && self.certified_key.ocsp == other.certified_key.ocsp
    }
}

/// What one certificate is assembled from.
struct Material<'a> {
    name: &'a str,
    bundle: &'a Bundle,
    trust_anchors: Option<&'a Path>,
    pool: &'a Intermediates,
}

impl Material<'_> {
    /// Finds the leaf by its key, orders and completes the chain, validates it.
    fn assemble(
        &self,
        sources: Vec<PathBuf>,
        now: Timestamp,
        purpose: Purpose,
    ) -> Result<LoadedCert, LoadError> {
        let provider = provider();
        let mut warnings = Vec::new();
        let mut certs = chain::dedup(&self.bundle.certs, &mut warnings)?;
        let given = certs.len();
        let pair = chain::match_key(self.bundle, &certs, provider).map_err(|e| match e {
            // The provider refuses weak RSA keys outright: say so in terms of the
            // certificate that has one.
            LoadError::UnsupportedKey { .. } => certs
                .iter()
                .filter(|c| !c.x509.is_ca())
                .find_map(|c| validate::check_key_strength(c).err())
                .unwrap_or(e),
            e => e,
        })?;
        chain::with_pool(&mut certs, self.pool);
        let ordered = chain::order(&certs, pair.leaf, given);
        let served: Vec<&Parsed<'_>> = ordered.path.iter().map(|&i| &certs[i]).collect();
        let leaf_warnings = validate::check_served_for(&served, now, purpose)?;
        let chain_der: Vec<CertificateDer<'static>> =
            served.iter().map(|p| p.der.clone()).collect();
        let mut chain_warnings = ordered.warnings;
        if let Some(anchors_path) = self.trust_anchors {
            let anchors = chain::load_anchors(anchors_path)?;
            chain::verify_to_anchors(
                &chain_der,
                anchors_path,
                &anchors,
                provider,
                now,
                &served[0].subject(),
            )?;
            // Verified to a configured anchor: the chain is complete for its clients.
            chain_warnings.retain(|w| !matches!(w, Warning::IncompleteChain { .. }));
        }
        warnings.extend(chain_warnings);
        warnings.extend(leaf_warnings);
        let chain = served.iter().map(|p| CertInfo::of(p)).collect();
        let completed = ordered
            .completed
            .iter()
            .map(|&i| Completion {
                subject: certs[i].subject(),
                path: certs[i].path.to_owned(),
            })
            .collect();
        Ok(LoadedCert {
            name: self.name.to_owned(),
            certified_key: Arc::new(CertifiedKey::new(chain_der, pair.signing_key)),
            chain,
            warnings,
            completed,
            sources,
            loaded_at: now,
            ocsp: None,
        })
    }
}
