//! What to load: where a certificate's files are, and which certificates each listener serves.

use std::path::PathBuf;

/// Where one certificate's material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A certificate file (leaf, optionally with intermediates), its private key, and an
    /// optional file of intermediates. PEM or DER; the key may sit in the certificate file.
    Files {
        cert: PathBuf,
        key: PathBuf,
        chain: Option<PathBuf>,
    },
    /// A PKCS#12/PFX file and a file holding its password (trailing line ending ignored).
    Pkcs12 {
        path: PathBuf,
        password_file: PathBuf,
    },
}

impl Source {
    /// The files this source reads, for reports and `/certs`.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Self::Files { cert, key, chain } => {
                let mut v = vec![cert.clone(), key.clone()];
                v.extend(chain.iter().cloned());
                v
            }
            Self::Pkcs12 {
                path,
                password_file,
            } => vec![path.clone(), password_file.clone()],
        }
    }
}

/// One named certificate as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// The name listeners refer to (`[[certificate]] name`).
    pub name: String,
    pub source: Source,
    /// When set, the served chain must verify to one of these roots or loading fails.
    pub trust_anchors: Option<PathBuf>,
    /// A DER OCSP response to staple, checked at each load.
    pub ocsp: Option<PathBuf>,
}

/// Which certificates one listener serves. The first certificate answers clients that send
/// no server name or one no certificate covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub certificates: Vec<String>,
    /// Refuse names no certificate covers (and clients without SNI) instead of using the default.
    pub strict_sni: bool,
}

/// Everything a [`crate::Store`] loads in one go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    pub certificates: Vec<CertSpec>,
    pub listeners: Vec<ListenerSpec>,
    /// Files and directories of extra CA certificates that complete incomplete chains
    /// (see [`crate::Intermediates`]).
    pub intermediates: Vec<PathBuf>,
    /// Where each certificate's last good material is kept, to serve when its files break
    /// before a start; `None` keeps nothing.
    pub last_good_dir: Option<PathBuf>,
}
