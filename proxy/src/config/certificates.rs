//! The `[[certificate]]` blocks: files (PEM/DER cert and key, or PKCS#12), or
//! `issuer = "internal"` with the names the internal CA covers; and the `[internal_ca]`
//! section, what that CA is made with.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use certstore::{CertSpec, Source};

use super::raw::{Issuer, RawCertificate};
use super::{InternalCert, ca_dir, ocsp_dir};

/// The checked certificates: what the store loads, which of them the internal CA issues,
/// and every name defined (for the listeners' references).
#[derive(Default)]
pub(super) struct Certificates {
    pub specs: Vec<CertSpec>,
    pub internal: Vec<InternalCert>,
    pub names: HashSet<String>,
    /// Certificates whose OCSP response Gatehouse fetches (`ocsp_fetch = true`).
    pub ocsp_fetch: Vec<String>,
}

pub(super) fn check(
    raw: &[RawCertificate],
    state_dir: &Path,
    resolve: &dyn Fn(&Path) -> PathBuf,
    problems: &mut Vec<String>,
) -> Certificates {
    let mut out = Certificates::default();
    for c in raw {
        let what = format!("certificate \"{}\"", c.name);
        if c.name.is_empty() {
            problems.push("certificate: `name` is empty; give every [[certificate]] a name".into());
        }
        if !out.names.insert(c.name.clone()) {
            problems.push(format!(
                "{what}: defined twice; rename one of the [[certificate]] blocks"
            ));
        }
        let issuer = match &c.issuer {
            Some(i) => match i.clone().check(&format!("{what}: "), "issuer", problems) {
                Some(i) => Some(i),
                None => continue,
            },
            None => None,
        };
        match issuer {
            Some(Issuer::Internal) => {
                if let Some((spec, internal)) = internal(c, &what, state_dir, problems) {
                    out.specs.push(spec);
                    out.internal.push(internal);
                }
            }
            None => {
                if c.names.is_some() {
                    problems.push(format!(
                        "{what}: `names` goes with issuer = \"internal\"; a certificate from files takes its names from the certificate"
                    ));
                }
                let ocsp = match (&c.ocsp, c.ocsp_fetch) {
                    (Some(_), true) => {
                        problems.push(format!(
                            "{what}: ocsp and ocsp_fetch = true both say where the staple comes from; keep one"
                        ));
                        None
                    }
                    (Some(file), false) => Some(resolve(file)),
                    (None, true) => {
                        out.ocsp_fetch.push(c.name.clone());
                        Some(ocsp_dir(state_dir).join(format!("{}.der", c.name)))
                    }
                    (None, false) => None,
                };
                if let Some(source) = files(c, &what, resolve, problems) {
                    out.specs.push(CertSpec {
                        name: c.name.clone(),
                        source,
                        trust_anchors: c.trust_anchors.as_deref().map(resolve),
                        ocsp,
                    });
                }
            }
        }
    }
    out
}

/// A certificate the internal CA issues into `state_dir/certs/`.
fn internal(
    c: &RawCertificate,
    what: &str,
    state_dir: &Path,
    problems: &mut Vec<String>,
) -> Option<(CertSpec, InternalCert)> {
    if c.cert.is_some()
        || c.key.is_some()
        || c.chain.is_some()
        || c.pkcs12.is_some()
        || c.password_file.is_some()
    {
        problems.push(format!(
            "{what}: issuer = \"internal\" has no files to supply; remove cert/key/chain/pkcs12/password_file, or remove issuer"
        ));
        return None;
    }
    let names: Vec<String> = match &c.names {
        Some(n) => n.iter().map(|n| n.to_ascii_lowercase()).collect(),
        None => super::host::names(),
    };
    if names.is_empty() {
        problems.push(format!(
            "{what}: `names` is empty; list the host names the certificate must cover"
        ));
        return None;
    }
    let dir = state_dir.join("certs");
    let ic = InternalCert {
        name: c.name.clone(),
        names,
        cert: dir.join(format!("{}.crt", c.name)),
        key: dir.join(format!("{}.key", c.name)),
    };
    let spec = CertSpec {
        name: c.name.clone(),
        source: Source::Files {
            cert: ic.cert.clone(),
            key: ic.key.clone(),
            chain: None,
        },
        trust_anchors: Some(ca_dir(state_dir).join(certstore::InternalCa::CERT_FILE)),
        ocsp: None,
    };
    Some((spec, ic))
}

/// Where a certificate from files is read: `cert`/`key` (+ `chain`), or
/// `pkcs12`/`password_file`.
fn files(
    c: &RawCertificate,
    what: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
    problems: &mut Vec<String>,
) -> Option<Source> {
    let problem = match (&c.cert, &c.key, &c.pkcs12, &c.password_file) {
        (Some(cert), Some(key), None, None) => {
            return Some(Source::Files {
                cert: resolve(cert),
                key: resolve(key),
                chain: c.chain.as_deref().map(resolve),
            });
        }
        (None, None, Some(p12), Some(pw)) if c.chain.is_none() => {
            return Some(Source::Pkcs12 {
                path: resolve(p12),
                password_file: resolve(pw),
            });
        }
        (None, None, Some(_), Some(_)) => {
            "`chain` goes with `cert`/`key`, not `pkcs12`; the PKCS#12 file carries its own chain: remove `chain`"
        }
        (None, None, Some(_), None) => {
            "`pkcs12` needs `password_file`; write the password to a file and name it"
        }
        (Some(_), None, None, None) => {
            "`cert` needs `key`; name the private key file (it may be the same file as `cert`)"
        }
        (None, Some(_), None, None) => "`key` needs `cert`; name the certificate file",
        (None, None, None, _) => {
            "no files; set `cert` and `key` (PEM/DER), `pkcs12` and `password_file`, or issuer = \"internal\""
        }
        _ => "set either `cert`/`key` or `pkcs12`/`password_file`, not both",
    };
    problems.push(format!("{what}: {problem}"));
    None
}

/// The `[internal_ca]` section; by default "Gatehouse Internal CA <host>", organization
/// "Gatehouse", valid ten years.
pub(super) fn internal_ca(
    raw: Option<&super::raw::RawInternalCa>,
    problems: &mut Vec<String>,
) -> certstore::CaSubject {
    let host = super::host::names().into_iter().next().unwrap_or_default();
    let validity_days = match raw.and_then(|r| r.validity_days) {
        Some(d @ 1..=36_500) => d,
        Some(d) => {
            problems.push(format!(
                "[internal_ca] validity_days = {d} is out of range; give 1 to 36500 (the default is {})",
                certstore::CA_LIFETIME_DAYS
            ));
            certstore::CA_LIFETIME_DAYS
        }
        None => certstore::CA_LIFETIME_DAYS,
    };
    certstore::CaSubject {
        common_name: raw
            .and_then(|r| r.common_name.clone())
            .unwrap_or_else(|| format!("Gatehouse Internal CA {host}")),
        organization: raw
            .and_then(|r| r.organization.clone())
            .unwrap_or_else(|| "Gatehouse".into()),
        validity_days,
    }
}
