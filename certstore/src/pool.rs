//! The pool of known intermediates: CA certificates a leaf's chain can be completed from
//! when its files lack them (as HAProxy's `issuers-chain-path`), and the roots clients
//! hold, which end a chain without being served.
//!
//! The pool holds every CA certificate of the configured certificates' files, and of the
//! extra files and directories the configuration names (`state_dir/intermediates/`, the
//! internal CA). It is gathered at load time, never on a handshake.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use x509_parser::asn1_rs::{Any, FromDer};

use crate::chain::ca_certs;
use crate::error::LoadError;
use crate::parse::{Bundle, SourcedCert, load_source, parse_bundle, read_file};
use crate::source::{Source, StoreConfig};

/// CA certificates that may complete a chain, each with the file it came from.
#[derive(Debug, Default, Clone)]
pub struct Intermediates {
    certs: Vec<SourcedCert>,
}

impl Intermediates {
    /// The CA certificates of every configured certificate's files (read leniently: a
    /// certificate whose key is broken still lends its chain) and of `config.intermediates`.
    /// Files that cannot be read are logged and left out; they never stop a load.
    pub fn gather(config: &StoreConfig) -> Self {
        let mut pool = Self::default();
        for spec in &config.certificates {
            match &spec.source {
                Source::Files { cert, chain, .. } => {
                    for path in std::iter::once(cert).chain(chain) {
                        if let Ok(bundle) = read_file(path).and_then(|b| parse_bundle(path, &b)) {
                            pool.add_bundle(&bundle);
                        }
                    }
                }
                Source::Pkcs12 { .. } => {
                    if let Ok(bundle) = load_source(&spec.source) {
                        pool.add_bundle(&bundle);
                    }
                }
            }
        }
        for path in &config.intermediates {
            if let Err(e) = pool.add_path(path) {
                tracing::warn!("intermediates: {e}; the file is left out of the pool");
            }
        }
        pool
    }

    /// Adds the CA certificates of `bundle` (never a leaf), once each.
    pub fn add_bundle(&mut self, bundle: &Bundle) {
        for cert in ca_certs(bundle) {
            if !self.certs.iter().any(|c| c.der == cert.der) {
                self.certs.push(cert);
            }
        }
    }

    /// Adds a file, or every file of a directory (in name order). A path that does not
    /// exist adds nothing: the directory is made when the first intermediate is added.
    pub fn add_path(&mut self, path: &Path) -> Result<(), LoadError> {
        if !path.exists() {
            return Ok(());
        }
        if !path.is_dir() {
            let bundle = parse_bundle(path, &read_file(path)?)?;
            self.add_bundle(&bundle);
            return Ok(());
        }
        let entries = std::fs::read_dir(path).map_err(|e| LoadError::read(path, e))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            if let Err(e) = self.add_path(&file) {
                tracing::warn!("intermediates: {e}; the file is left out of the pool");
            }
        }
        Ok(())
    }

    /// The certificates, in the order they were added.
    pub fn certs(&self) -> &[SourcedCert] {
        &self.certs
    }
}

/// Whether a certificate whose issuer is `issuer` (a DER `Name`, tag included) was issued
/// by a root that clients hold: one of webpki-roots or of this system's trust store.
pub(crate) fn issued_by_known_root(issuer: &[u8]) -> bool {
    let Ok((_, name)) = Any::from_der(issuer) else {
        return false;
    };
    known_root_subjects()
        .iter()
        .any(|s| s.as_slice() == name.data)
}

/// The subjects (DER `Name` contents, as trust anchors hold them) of the roots clients
/// hold. Read once: the system store changes with package updates, not at run time.
fn known_root_subjects() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut subjects: Vec<Vec<u8>> = webpki_roots::TLS_SERVER_ROOTS
            .iter()
            .map(|a| a.subject.as_ref().to_vec())
            .collect();
        for der in rustls_native_certs::load_native_certs().certs {
            if let Ok(anchor) = webpki::anchor_from_trusted_cert(&der) {
                subjects.push(anchor.subject.as_ref().to_vec());
            }
        }
        subjects
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_root_is_known_and_an_unknown_name_is_not() {
        let root = webpki_roots::TLS_SERVER_ROOTS[0].subject.as_ref();
        // A Name is a SEQUENCE: tag 0x30, then the length, then what anchors hold.
        let mut name = vec![0x30, 0x81, u8::try_from(root.len()).unwrap_or(0)];
        if root.len() < 0x80 {
            name = vec![0x30, u8::try_from(root.len()).unwrap_or(0)];
        }
        name.extend_from_slice(root);
        assert!(issued_by_known_root(&name), "a webpki root is known");
        assert!(
            !issued_by_known_root(&[0x30, 0x03, 0x31, 0x01, 0x00]),
            "an unrelated name is not a known root"
        );
    }
}
