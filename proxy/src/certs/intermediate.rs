//! `gatehouse certs install --intermediate FILE`: adds intermediate CA certificates to the
//! pool that completes chains (`state_dir/intermediates/`), says which configured
//! certificates it completes, and reloads.

use std::path::{Path, PathBuf};

use certstore::{CertInfo, Intermediates, LoadedCert, Timestamp, certs_pem, fingerprint};

use super::{CertsError, Outcome, reload_and_report, write_public};
use crate::config::{Config, intermediates_dir};
use crate::exit;

/// See the module doc. Refused, with nothing written, when `file` holds no certificate or
/// one that is not a CA (a server certificate given by mistake).
pub(super) fn add(config: &Config, file: &Path, dry_run: bool) -> Outcome {
    let bytes = certstore::read_file(file)?;
    let bundle = certstore::parse_any(file, &bytes, None)?;
    let now = Timestamp::now();
    let inspection = certstore::inspect(&bundle, now)?;
    if inspection.certs.is_empty() {
        return Err(CertsError::NoIntermediate {
            path: file.to_owned(),
        });
    }
    if let Some(leaf) = inspection.certs.iter().find(|c| !c.is_ca) {
        return Err(CertsError::NotIntermediate {
            path: file.to_owned(),
            subject: leaf.subject.clone(),
        });
    }
    let before = config.intermediates();
    let mut after = before.clone();
    after.add_bundle(&bundle);
    let dir = intermediates_dir(&config.state_dir);
    for info in &inspection.certs {
        let target = dir.join(file_name(info));
        let what = format!("\"{}\" (expires {})", info.subject, info.not_after);
        if target.exists() {
            println!("already in the pool: {what} in {}", target.display());
            continue;
        }
        if !dry_run {
            let der = bundle
                .certs
                .iter()
                .find(|c| fingerprint(c.der.as_ref()) == info.fingerprint_sha256)
                .map(|c| c.der.clone());
            write_public(&target, certs_pem(der.as_slice()).as_bytes())?;
        }
        println!("added intermediate {what} as {}", target.display());
    }
    for name in completes(config, &before, &after, now) {
        println!("completes the chain of \"{name}\"");
    }
    if dry_run {
        println!("dry run: nothing written");
        return Ok(exit::OK);
    }
    Ok(reload_and_report(config, &[]))
}

/// `CN-FINGERPRINT.pem`: readable in a listing, and one file per certificate.
fn file_name(info: &CertInfo) -> PathBuf {
    let cn = info
        .subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or("intermediate");
    let cn: String = cn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let short: String = info
        .fingerprint_sha256
        .chars()
        .filter(|c| *c != ':')
        .take(16)
        .collect();
    PathBuf::from(format!("{cn}-{}.pem", short.to_ascii_lowercase()))
}

/// The configured certificates whose chain is incomplete with `before` and complete with
/// `after`.
fn completes(
    config: &Config,
    before: &Intermediates,
    after: &Intermediates,
    now: Timestamp,
) -> Vec<String> {
    let complete = |spec, pool| LoadedCert::load(spec, now, pool).is_ok_and(|c| c.chain_complete());
    config
        .certificates
        .iter()
        .filter(|spec| !complete(spec, before) && complete(spec, after))
        .map(|spec| spec.name.clone())
        .collect()
}
