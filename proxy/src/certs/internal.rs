//! Certificates issued by the internal CA (`issuer = "internal"`): issued at startup and
//! on reload when missing, when their names differ from the configured ones (the host was
//! renamed), or when within 30 days of expiry.

use std::fmt;

use certstore::{EXPIRY_WARNING_DAYS, InternalCa, IssueError, Timestamp};

use crate::config::{Config, InternalCert, ca_dir};

/// Why an internal certificate needs (re)issuing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Missing,
    Unreadable,
    /// It would not load: not issued by the current CA (the CA was remade), a damaged key.
    Invalid(String),
    NamesChanged {
        was: Vec<String>,
    },
    ExpiresSoon {
        days_left: i64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "not issued yet"),
            Self::Unreadable => write!(f, "its files are unreadable"),
            Self::Invalid(why) => write!(f, "it does not load ({why})"),
            Self::NamesChanged { was } => write!(f, "names changed (was {})", was.join(",")),
            Self::ExpiresSoon { days_left } => write!(f, "expires in {days_left} days"),
        }
    }
}

/// Whether `cert` (whose CA certificate is `ca_cert`) needs issuing now, and why.
pub fn needs_issue(
    cert: &InternalCert,
    ca_cert: &std::path::Path,
    now: Timestamp,
) -> Option<Reason> {
    if !cert.cert.exists() || !cert.key.exists() {
        return Some(Reason::Missing);
    }
    let Ok(bundle) = certstore::read_file(&cert.cert)
        .and_then(|bytes| certstore::parse_bundle(&cert.cert, &bytes))
    else {
        return Some(Reason::Unreadable);
    };
    let Ok(inspection) = certstore::inspect(&bundle, now) else {
        return Some(Reason::Unreadable);
    };
    let Some(leaf) = inspection.certs.first() else {
        return Some(Reason::Unreadable);
    };
    let mut have = leaf.names();
    have.sort();
    let mut want = cert.names.clone();
    want.sort();
    if have != want {
        return Some(Reason::NamesChanged { was: have });
    }
    let days_left = leaf.days_left(now);
    if days_left < EXPIRY_WARNING_DAYS {
        return Some(Reason::ExpiresSoon { days_left });
    }
    let spec = certstore::CertSpec {
        name: cert.name.clone(),
        source: certstore::Source::Files {
            cert: cert.cert.clone(),
            key: cert.key.clone(),
            chain: None,
        },
        trust_anchors: Some(ca_cert.to_owned()),
        ocsp: None,
    };
    certstore::LoadedCert::load(&spec, now, &certstore::Intermediates::default())
        .err()
        .map(|e| Reason::Invalid(e.to_string()))
}

/// What `plan` found for one certificate.
#[derive(Debug)]
pub struct Planned {
    pub name: String,
    pub reason: Reason,
}

/// The internal certificates that need issuing now.
pub fn plan(config: &Config, now: Timestamp) -> Vec<Planned> {
    let ca_cert = ca_dir(&config.state_dir).join(InternalCa::CERT_FILE);
    config
        .internal
        .iter()
        .filter_map(|c| {
            needs_issue(c, &ca_cert, now).map(|reason| Planned {
                name: c.name.clone(),
                reason,
            })
        })
        .collect()
}

/// Loads (or makes) the internal CA of `config`.
pub fn ca(config: &Config, now: Timestamp) -> Result<InternalCa, IssueError> {
    InternalCa::load_or_create(&ca_dir(&config.state_dir), &config.internal_ca, now)
}

/// Issues every internal certificate that needs it; logs each one.
pub fn ensure(config: &Config, now: Timestamp) -> Result<Vec<Planned>, IssueError> {
    if config.internal.is_empty() {
        return Ok(Vec::new());
    }
    let ca = ca(config, now)?;
    let planned = plan(config, now);
    for p in &planned {
        let Some(cert) = config.internal.iter().find(|c| c.name == p.name) else {
            continue;
        };
        reissue(config, &ca, cert, now)?;
        tracing::info!(certificate = %cert.name, names = ?cert.names, reason = %p.reason, "issued by the internal CA");
    }
    Ok(planned)
}

/// Issues `cert` from `ca` after backing up its current files, like any certificate's
/// (`certs backups` lists them). A backup that cannot be written is logged: the files are
/// the internal CA's own, and a start must not fail for want of a copy.
pub fn reissue(
    config: &Config,
    ca: &InternalCa,
    cert: &InternalCert,
    now: Timestamp,
) -> Result<Option<super::backup::Backup>, IssueError> {
    let files = [(cert.cert.clone(), false), (cert.key.clone(), true)];
    let backup = match super::backup::create(&config.state_dir, &cert.name, &files, now) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(certificate = %cert.name, "cannot back up before reissuing: {e}");
            None
        }
    };
    ca.issue_to_files(&cert.names, &cert.cert, &cert.key, now)?;
    Ok(backup)
}
