//! Last-known-good: each certificate's last material that loaded, kept in one file
//! (`DIR/NAME.pem`, chain then key, 0600), so that a certificate whose files break before a
//! start (a renewal half done, then a reboot) starts with what it served before.

use std::path::{Path, PathBuf};

use crate::cert::LoadedCert;
use crate::encode::{certs_pem, key_pem};
use crate::error::LoadError;
use crate::fsutil::{FileMode, write_atomic};
use crate::parse::Bundle;
use crate::pool::Intermediates;
use crate::source::{CertSpec, Source};
use crate::time::Timestamp;

/// The file certificate `name`'s last good material is kept in.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pem"))
}

/// Keeps `cert` (read from `bundle`) as certificate `name`'s last good material, unless the
/// file already holds exactly that. A failure to write is logged: it never fails a load.
pub(crate) fn keep(dir: &Path, cert: &LoadedCert, bundle: &Bundle) {
    let Ok(key) = crate::cert::matching_key(bundle) else {
        return;
    };
    let mut pem = certs_pem(&cert.certified_key.cert);
    pem.push_str(&key_pem(&bundle.keys[key].der));
    let file = path(dir, &cert.name);
    if std::fs::read(&file).is_ok_and(|held| held == pem.as_bytes()) {
        return;
    }
    if let Err(e) = write_atomic(&file, pem.as_bytes(), FileMode::Secret) {
        tracing::warn!(certificate = %cert.name, "cannot keep the last good version in {}: {e}", file.display());
    }
}

/// Loads certificate `spec`'s last good material, as the spec's own files would load.
pub(crate) fn load(
    dir: &Path,
    spec: &CertSpec,
    now: Timestamp,
    pool: &Intermediates,
) -> Option<LoadedCert> {
    let file = path(dir, &spec.name);
    if !file.exists() {
        return None;
    }
    let kept = CertSpec {
        name: spec.name.clone(),
        source: Source::Files {
            cert: file.clone(),
            key: file,
            chain: None,
        },
        trust_anchors: spec.trust_anchors.clone(),
        ocsp: spec.ocsp.clone(),
    };
    match LoadedCert::load(&kept, now, pool) {
        Ok(cert) => Some(cert),
        Err(e) => {
            tracing::warn!(certificate = %spec.name, "the last good version does not load either: {e}");
            None
        }
    }
}

/// Reads certificate `spec`'s files and, when they load, keeps them as last good.
pub(crate) fn load_and_keep(
    spec: &CertSpec,
    now: Timestamp,
    pool: &Intermediates,
    dir: Option<&Path>,
) -> Result<LoadedCert, LoadError> {
    let bundle = crate::parse::load_source(&spec.source)?;
    let mut cert = LoadedCert::from_bundle(
        &spec.name,
        &bundle,
        spec.trust_anchors.as_deref(),
        spec.source.paths(),
        now,
        pool,
    )?;
    if let Some(path) = &spec.ocsp {
        cert.staple(path, now);
    }
    if let Some(dir) = dir {
        keep(dir, &cert, &bundle);
    }
    Ok(cert)
}
