//! The internal CA: issues working certificates when no CA-signed one is configured (first
//! boot, `gatehouse demo`).
//!
//! The CA key and certificate live in one directory (`state_dir/ca/`), made on first need:
//! ECDSA P-256, valid 10 years. Leaves are ECDSA P-256, valid 397 days.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};

use crate::fsutil::{FileMode, write_atomic};
use crate::time::Timestamp;

/// Lifetime of the internal CA.
pub const CA_LIFETIME_DAYS: i64 = 3650;
/// Lifetime of certificates the internal CA issues: what browsers accept.
pub const LEAF_LIFETIME_DAYS: i64 = 397;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the internal CA in {} is damaged ({detail}); move the directory aside to make a new CA", dir.display())]
    Damaged { dir: PathBuf, detail: String },
    #[error("cannot issue a certificate for {names:?}: {detail}")]
    Issue { names: Vec<String>, detail: String },
}

/// A certificate and key the internal CA issued, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").finish_non_exhaustive()
    }
}

/// The internal CA, loaded from or created in its directory.
pub struct InternalCa {
    dir: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn to_offset(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.unix_seconds())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    // aws-lc-rs' system random: serials must be unpredictable (CA/B Forum: 64+ bits).
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// What a new internal CA is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSubject {
    pub common_name: String,
    pub organization: String,
    /// How long the CA certificate is valid.
    pub validity_days: i64,
}

impl InternalCa {
    pub const CERT_FILE: &'static str = "ca.crt";
    pub const KEY_FILE: &'static str = "ca.key";
    /// Where [`InternalCa::rotate`] keeps the CA it replaced.
    pub const PREVIOUS_DIR: &'static str = "previous";
    const ROTATED_FILE: &'static str = "rotated_at";

    /// Loads the CA from `dir`, or makes one as `subject` says there if `dir` holds none.
    pub fn load_or_create(
        dir: &Path,
        subject: &CaSubject,
        now: Timestamp,
    ) -> Result<Self, IssueError> {
        let cert_path = dir.join(Self::CERT_FILE);
        let key_path = dir.join(Self::KEY_FILE);
        if cert_path.exists() || key_path.exists() {
            return Self::load(dir);
        }
        let key = KeyPair::generate().map_err(|e| IssueError::Damaged {
            dir: dir.to_owned(),
            detail: e.to_string(),
        })?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| IssueError::Damaged {
                dir: dir.to_owned(),
                detail: e.to_string(),
            })?;
        params
            .distinguished_name
            .push(DnType::CommonName, subject.common_name.as_str());
        params
            .distinguished_name
            .push(DnType::OrganizationName, subject.organization.as_str());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = to_offset(now.plus_days(-1));
        params.not_after = to_offset(now.plus_days(subject.validity_days));
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(|e| IssueError::Damaged {
            dir: dir.to_owned(),
            detail: e.to_string(),
        })?;
        let write = |path: &Path, bytes: &[u8], mode| {
            write_atomic(path, bytes, mode).map_err(|source| IssueError::Write {
                path: path.to_owned(),
                source,
            })
        };
        write(&key_path, key.serialize_pem().as_bytes(), FileMode::Secret)?;
        write(&cert_path, cert.pem().as_bytes(), FileMode::Public)?;
        Ok(Self {
            dir: dir.to_owned(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    fn load(dir: &Path) -> Result<Self, IssueError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| IssueError::Read { path, source })
        };
        let cert_pem = read(Self::CERT_FILE)?;
        let key_pem = read(Self::KEY_FILE)?;
        let damaged = |detail: String| IssueError::Damaged {
            dir: dir.to_owned(),
            detail,
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| damaged(e.to_string()))?;
        let issuer =
            Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| damaged(e.to_string()))?;
        Ok(Self {
            dir: dir.to_owned(),
            cert_pem,
            issuer,
        })
    }

    /// Renews the CA: moves the current one (certificate and key) to `dir/previous/`,
    /// replacing any older previous CA, records when, and makes a new one as `subject` says.
    /// Certificates the old CA issued stay valid for clients that trust it; reissue them.
    pub fn rotate(dir: &Path, subject: &CaSubject, now: Timestamp) -> Result<Self, IssueError> {
        let old = Self::load(dir)?;
        let previous = dir.join(Self::PREVIOUS_DIR);
        let write = |path: &Path, bytes: &[u8], mode| {
            write_atomic(path, bytes, mode).map_err(|source| IssueError::Write {
                path: path.to_owned(),
                source,
            })
        };
        let key_pem =
            std::fs::read(dir.join(Self::KEY_FILE)).map_err(|source| IssueError::Read {
                path: dir.join(Self::KEY_FILE),
                source,
            })?;
        write(&previous.join(Self::KEY_FILE), &key_pem, FileMode::Secret)?;
        write(
            &previous.join(Self::CERT_FILE),
            old.cert_pem.as_bytes(),
            FileMode::Public,
        )?;
        write(
            &previous.join(Self::ROTATED_FILE),
            format!("{}\n", now.unix_seconds()).as_bytes(),
            FileMode::Public,
        )?;
        for file in [Self::KEY_FILE, Self::CERT_FILE] {
            let path = dir.join(file);
            std::fs::remove_file(&path).map_err(|source| IssueError::Write { path, source })?;
        }
        Self::load_or_create(dir, subject, now)
    }

    /// The CA the last rotation replaced, PEM, while certificates it issued may still be in
    /// use: until their longest lifetime has passed since the rotation.
    pub fn previous_cert_pem(dir: &Path, now: Timestamp) -> Option<(String, Timestamp)> {
        let previous = dir.join(Self::PREVIOUS_DIR);
        let rotated: i64 = std::fs::read_to_string(previous.join(Self::ROTATED_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let until = Timestamp(rotated).plus_days(LEAF_LIFETIME_DAYS);
        if now >= until {
            return None;
        }
        let pem = std::fs::read_to_string(previous.join(Self::CERT_FILE)).ok()?;
        Some((pem, until))
    }

    /// The CA certificate, PEM: what browsers and trust stores import.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(Self::CERT_FILE)
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), valid 397 days.
    pub fn issue(&self, names: &[String], now: Timestamp) -> Result<Issued, IssueError> {
        let fail = |detail: String| IssueError::Issue {
            names: names.to_vec(),
            detail,
        };
        let key = KeyPair::generate().map_err(|e| fail(e.to_string()))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(e.to_string()))?;
        for name in names {
            params
                .subject_alt_names
                .push(match name.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(
                        name.clone()
                            .try_into()
                            .map_err(|e: rcgen::Error| fail(e.to_string()))?,
                    ),
                });
        }
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.not_before = to_offset(now.plus_days(-1));
        params.not_after = to_offset(now.plus_days(LEAF_LIFETIME_DAYS - 1));
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues for `names` and writes the leaf to `cert` and its key to `key` (0600),
    /// atomically. The CA certificate is the root clients import, so it is not served.
    pub fn issue_to_files(
        &self,
        names: &[String],
        cert: &Path,
        key: &Path,
        now: Timestamp,
    ) -> Result<(), IssueError> {
        let issued = self.issue(names, now)?;
        let write = |path: &Path, bytes: &[u8], mode| {
            write_atomic(path, bytes, mode).map_err(|source| IssueError::Write {
                path: path.to_owned(),
                source,
            })
        };
        write(key, issued.key_pem.as_bytes(), FileMode::Secret)?;
        write(cert, issued.cert_pem.as_bytes(), FileMode::Public)?;
        Ok(())
    }
}
