//! What can go wrong when loading a certificate, and what merely deserves a warning.
//!
//! Every error names the file, says what is wrong and what to do about it: the people who
//! read these messages paste files from a CA's e-mail and are not PKI experts.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::time::Timestamp;

/// Why a certificate could not be loaded. Loading one certificate never fails another.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}; check the path and that gatehouse may read the file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is empty; copy the file again from where you got it", path.display())]
    Empty { path: PathBuf },

    #[error(
        "{} is not valid PEM ({detail}); the file looks truncated or edited: copy it again from the CA",
        path.display()
    )]
    MalformedPem { path: PathBuf, detail: String },

    #[error(
        "{} holds no certificate or private key in PEM or DER form; expected a .crt/.pem/.cer/.der/.key file (a .pfx/.p12 file goes in `pkcs12`)",
        path.display()
    )]
    Unrecognized { path: PathBuf },

    #[error(
        "{} is a PKCS#12/PFX file; configure it as `pkcs12` with a `password_file` (to look inside: `gatehouse certs inspect {} --password-file FILE`)",
        path.display(), path.display()
    )]
    IsPkcs12 { path: PathBuf },

    #[error(
        "{} holds a certificate that cannot be parsed ({detail}); copy it again from the CA",
        path.display()
    )]
    BadCertificate { path: PathBuf, detail: String },

    #[error(
        "{} holds an encrypted private key; decrypt it (`openssl pkey -in {} -out key.pem`) or import the certificate as PKCS#12 with a password file",
        path.display(), path.display()
    )]
    EncryptedKey { path: PathBuf },

    #[error("{} holds no certificate; point `cert` at the certificate the CA issued", path.display())]
    NoCertificate { path: PathBuf },

    #[error("{} holds no private key; point `key` at the key made with the CSR", path.display())]
    NoPrivateKey { path: PathBuf },

    #[error(
        "{} holds a private key gatehouse cannot use ({detail}); use RSA (2048-4096 bits), ECDSA P-256/P-384 or Ed25519",
        path.display()
    )]
    UnsupportedKey { path: PathBuf, detail: String },

    #[error(
        "no certificate in {} matches the private key in {}; the certificate was issued for another key: use the key the CSR was made with",
        display_paths(cert_paths), key_path.display()
    )]
    KeyMismatch {
        key_path: PathBuf,
        cert_paths: Vec<PathBuf>,
    },

    #[error("wrong password for {}: check the password file", path.display())]
    Pkcs12Password { path: PathBuf },

    #[error(
        "{} is not a readable PKCS#12/PFX file ({detail}); export it again, or use PEM files",
        path.display()
    )]
    Pkcs12 { path: PathBuf, detail: String },

    #[error("password file {} is not UTF-8 text; write the password as plain text", path.display())]
    PasswordNotText { path: PathBuf },

    #[error(
        "certificate \"{subject}\" in {} is not valid before {not_before} (now {now}); check the system clock or wait",
        path.display()
    )]
    NotYetValid {
        path: PathBuf,
        subject: String,
        not_before: Timestamp,
        now: Timestamp,
    },

    #[error(
        "certificate \"{subject}\" in {} expired at {not_after} (now {now}); renew it with the CA",
        path.display()
    )]
    Expired {
        path: PathBuf,
        subject: String,
        not_after: Timestamp,
        now: Timestamp,
    },

    #[error(
        "certificate \"{subject}\" in {} has a {bits}-bit RSA key; browsers refuse RSA under 2048 bits: make a new key and CSR (rsa-2048 or larger, or ecdsa-p256)",
        path.display()
    )]
    WeakRsaKey {
        path: PathBuf,
        subject: String,
        bits: usize,
    },

    #[error(
        "certificate \"{subject}\" in {} is signed with {algorithm}, which clients reject; ask the CA to reissue it with SHA-256",
        path.display()
    )]
    WeakSignature {
        path: PathBuf,
        subject: String,
        algorithm: &'static str,
    },

    #[error(
        "certificate \"{subject}\" in {} has no subject alternative name; browsers ignore the common name: request it again with the host names as SANs",
        path.display()
    )]
    NoSubjectAltName { path: PathBuf, subject: String },

    #[error(
        "{} holds no usable trust anchor certificate ({detail}); point `trust_anchors` at the root CA certificate in PEM or DER",
        path.display()
    )]
    TrustAnchors { path: PathBuf, detail: String },

    #[error(
        "the chain of \"{subject}\" does not verify to the trust anchors in {} ({detail}); add the missing intermediate to `chain` or fix `trust_anchors`",
        anchors.display()
    )]
    Untrusted {
        anchors: PathBuf,
        subject: String,
        detail: String,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(" and ")
}

impl LoadError {
    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Self::Read {
            path: path.to_owned(),
            source,
        }
    }
}

/// Something worth telling the operator that does not stop the certificate from serving.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A self-signed root was in the files; clients have their own copy, so it is not served.
    DroppedRoot { subject: String },
    /// The same certificate appeared twice.
    DroppedDuplicate { subject: String },
    /// A certificate that is not on the leaf's path to its root.
    DroppedUnrelated { subject: String },
    /// The files listed the certificates in another order than the one served.
    Reordered,
    /// The leaf's issuer is not among the files: served alone, the leaf fails on clients
    /// that do not already hold its intermediate. (A chain that reaches an intermediate
    /// and stops below its root is complete: clients hold the roots.)
    IncompleteChain { missing_issuer: String },
    /// Lifetime above what browsers accept for publicly trusted certificates.
    LongLifetime { days: i64 },
    /// Renew soon.
    ExpiresSoon {
        days_left: i64,
        not_after: Timestamp,
    },
    /// The subject's common name is not among the subject alternative names.
    CommonNameNotInSans { common_name: String },
    /// The configured OCSP response does not check out: served without a staple.
    OcspRefused { path: PathBuf, reason: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DroppedRoot { subject } => write!(
                f,
                "dropped self-signed root \"{subject}\": clients have their own copy"
            ),
            Self::DroppedDuplicate { subject } => {
                write!(f, "dropped duplicate certificate \"{subject}\"")
            }
            Self::DroppedUnrelated { subject } => write!(
                f,
                "dropped \"{subject}\": it is not on the leaf's path to its root"
            ),
            Self::Reordered => write!(
                f,
                "certificates were out of order: served as leaf first, then intermediates"
            ),
            Self::IncompleteChain { missing_issuer } => write!(
                f,
                "chain incomplete: issuer \"{missing_issuer}\" missing; add the intermediate certificate the CA sent to `chain`"
            ),
            Self::LongLifetime { days } => write!(
                f,
                "lifetime of {days} days exceeds the 397 days browsers accept for public certificates"
            ),
            Self::ExpiresSoon {
                days_left,
                not_after,
            } => write!(f, "expires in {days_left} days ({not_after}): renew it"),
            Self::CommonNameNotInSans { common_name } => write!(
                f,
                "common name \"{common_name}\" is not among the subject alternative names; clients that check it will fail"
            ),
            Self::OcspRefused { path, reason } => write!(
                f,
                "OCSP response {} not stapled: {reason}; served without a staple until a good one is in place",
                path.display()
            ),
        }
    }
}
