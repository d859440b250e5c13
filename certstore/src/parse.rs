//! Files as operators receive them → certificates and private keys.
//!
//! PEM (LF or CRLF, several blocks, text around them, certificate and key together), DER
//! certificates and keys, and PKCS#12/PFX. Parsing is done by `rustls_pki_types` (PEM),
//! `x509-parser` (DER certificates) and `p12-keystore` (PKCS#12); this module only decides
//! which of them a file is for and turns their failures into [`LoadError`]s that name the file.

use std::path::{Path, PathBuf};

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::LoadError;
use crate::source::Source;

/// A certificate and the file it came from.
#[derive(Debug, Clone)]
pub struct SourcedCert {
    pub der: CertificateDer<'static>,
    pub path: PathBuf,
}

/// A private key and the file it came from. Never printed: `Debug` shows only the path.
pub struct SourcedKey {
    pub der: PrivateKeyDer<'static>,
    pub path: PathBuf,
}

impl std::fmt::Debug for SourcedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcedKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Everything found in one or more files, in file order.
#[derive(Debug, Default)]
pub struct Bundle {
    pub certs: Vec<SourcedCert>,
    pub keys: Vec<SourcedKey>,
}

impl Bundle {
    fn extend(&mut self, other: Bundle) {
        self.certs.extend(other.certs);
        self.keys.extend(other.keys);
    }
}

/// Reads a whole file; an empty file is an error of its own (a failed copy, usually).
pub fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::read(path, e))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(LoadError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// Reads a PKCS#12 password file: its text without the trailing line ending.
pub fn read_password(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::read(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::PasswordNotText {
        path: path.to_owned(),
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Reads every file of a source.
pub fn load_source(source: &Source) -> Result<Bundle, LoadError> {
    match source {
        Source::Files { cert, key, chain } => {
            let mut bundle = parse_bundle(cert, &read_file(cert)?)?;
            if bundle.certs.is_empty() {
                return Err(LoadError::NoCertificate { path: cert.clone() });
            }
            if let Some(chain) = chain {
                // An empty chain file means "no intermediates" (what `certs install`
                // writes for a certificate that has none).
                match read_file(chain) {
                    Ok(bytes) => bundle.extend(parse_bundle(chain, &bytes)?),
                    Err(LoadError::Empty { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if key != cert {
                let keys = parse_bundle(key, &read_file(key)?)?;
                bundle.keys.extend(keys.keys);
            }
            if bundle.keys.is_empty() {
                return Err(LoadError::NoPrivateKey { path: key.clone() });
            }
            Ok(bundle)
        }
        Source::Pkcs12 {
            path,
            password_file,
        } => {
            let password = read_password(password_file)?;
            parse_pkcs12(path, &read_file(path)?, &password)
        }
    }
}

/// Parses a PEM or DER file holding certificates and/or keys.
pub fn parse_bundle(path: &Path, bytes: &[u8]) -> Result<Bundle, LoadError> {
    if looks_like_pem(bytes) {
        parse_pem(path, bytes)
    } else {
        parse_der(path, bytes)
    }
}

/// Parses any file `certs inspect` may be given: PKCS#12 when a password is supplied or the
/// file is neither PEM nor a DER certificate or key.
pub fn parse_any(path: &Path, bytes: &[u8], password: Option<&str>) -> Result<Bundle, LoadError> {
    if looks_like_pem(bytes) {
        return parse_pem(path, bytes);
    }
    match (parse_der(path, bytes), password) {
        (Err(LoadError::IsPkcs12 { .. }), Some(password)) => parse_pkcs12(path, bytes, password),
        (result, _) => result,
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    contains(bytes, b"-----BEGIN ")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn parse_pem(path: &Path, bytes: &[u8]) -> Result<Bundle, LoadError> {
    // The PEM parser skips sections it does not know, and a traditional encrypted key has
    // headers it cannot decode: look for both before parsing so the user hears what to do.
    if contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(bytes, b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(LoadError::EncryptedKey {
            path: path.to_owned(),
        });
    }
    let malformed = |detail: String| LoadError::MalformedPem {
        path: path.to_owned(),
        detail,
    };
    let mut bundle = Bundle::default();
    let mut other_sections = 0usize;
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        let (kind, der) = item.map_err(|e| malformed(describe_pem_error(&e)))?;
        match kind {
            SectionKind::Certificate => {
                check_certificate(path, &der)?;
                bundle.certs.push(SourcedCert {
                    der: CertificateDer::from(der),
                    path: path.to_owned(),
                });
            }
            SectionKind::PrivateKey => bundle.keys.push(SourcedKey {
                der: PrivateKeyDer::Pkcs8(der.into()),
                path: path.to_owned(),
            }),
            SectionKind::RsaPrivateKey => bundle.keys.push(SourcedKey {
                der: PrivateKeyDer::Pkcs1(der.into()),
                path: path.to_owned(),
            }),
            SectionKind::EcPrivateKey => bundle.keys.push(SourcedKey {
                der: PrivateKeyDer::Sec1(der.into()),
                path: path.to_owned(),
            }),
            _ => other_sections += 1,
        }
    }
    if contains(bytes, b"-----BEGIN PKCS7-----") {
        bundle.certs.extend(pem_pkcs7(path, bytes)?);
    }
    if bundle.certs.is_empty() && bundle.keys.is_empty() {
        return Err(if other_sections > 0 {
            LoadError::Unrecognized {
                path: path.to_owned(),
            }
        } else {
            malformed("no complete BEGIN/END block".into())
        });
    }
    Ok(bundle)
}

fn describe_pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "missing \"-----END {}-----\" line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { .. } => "malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "the base64 text between BEGIN and END is damaged".into(),
        other => other.to_string(),
    }
}

/// Whether `bytes` are a PKCS#12 archive: it parses, or only the (empty) password is wrong.
fn is_pkcs12(bytes: &[u8]) -> bool {
    matches!(
        KeyStore::from_pkcs12(bytes, "", Pkcs12ImportPolicy::Relaxed),
        Ok(_) | Err(p12_keystore::error::Error::MacError(_))
    )
}

fn parse_der(path: &Path, bytes: &[u8]) -> Result<Bundle, LoadError> {
    if let Ok((rest, _)) = x509_parser::parse_x509_certificate(bytes)
        && rest.is_empty()
    {
        return Ok(Bundle {
            certs: vec![SourcedCert {
                der: CertificateDer::from(bytes.to_vec()),
                path: path.to_owned(),
            }],
            keys: Vec::new(),
        });
    }
    if let Some(certs) = pkcs7_certs(bytes) {
        return Ok(Bundle {
            certs: certs
                .into_iter()
                .map(|der| SourcedCert {
                    der: CertificateDer::from(der),
                    path: path.to_owned(),
                })
                .collect(),
            keys: Vec::new(),
        });
    }
    if is_pkcs12(bytes) {
        return Err(LoadError::IsPkcs12 {
            path: path.to_owned(),
        });
    }
    match PrivateKeyDer::try_from(bytes.to_vec()) {
        Ok(der) => Ok(Bundle {
            certs: Vec::new(),
            keys: vec![SourcedKey {
                der,
                path: path.to_owned(),
            }],
        }),
        Err(_) => Err(LoadError::Unrecognized {
            path: path.to_owned(),
        }),
    }
}

/// The certificates of the `PKCS7` blocks of a PEM file (`openssl crl2pkcs7`, a CA's
/// `.p7b` in text form).
fn pem_pkcs7(path: &Path, bytes: &[u8]) -> Result<Vec<SourcedCert>, LoadError> {
    let malformed = |detail: String| LoadError::MalformedPem {
        path: path.to_owned(),
        detail,
    };
    let blocks = ::pem::parse_many(bytes).map_err(|e| malformed(e.to_string()))?;
    let mut certs = Vec::new();
    for block in blocks.iter().filter(|b| b.tag() == "PKCS7") {
        let found = pkcs7_certs(block.contents()).ok_or_else(|| {
            malformed("its PKCS7 block is not a PKCS#7 certificate bundle".into())
        })?;
        for der in found {
            check_certificate(path, &der)?;
            certs.push(SourcedCert {
                der: CertificateDer::from(der),
                path: path.to_owned(),
            });
        }
    }
    Ok(certs)
}

/// The certificates of a PKCS#7 (CMS SignedData) bundle, as CAs send chains in `.p7b` and
/// `.p7c` files (Windows AD CS especially); `None` when `der` is not one.
fn pkcs7_certs(der: &[u8]) -> Option<Vec<Vec<u8>>> {
    use cms::cert::CertificateChoices;
    use cms::cert::x509::der::{Decode, Encode};
    let info = cms::content_info::ContentInfo::from_der(der).ok()?;
    let signed: cms::signed_data::SignedData = info.content.decode_as().ok()?;
    let certs = signed.certificates?;
    Some(
        certs
            .0
            .iter()
            .filter_map(|c| match c {
                CertificateChoices::Certificate(cert) => cert.to_der().ok(),
                _ => None,
            })
            .collect(),
    )
}

fn check_certificate(path: &Path, der: &[u8]) -> Result<(), LoadError> {
    x509_parser::parse_x509_certificate(der)
        .map(|_| ())
        .map_err(|e| LoadError::BadCertificate {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

/// Parses a PKCS#12/PFX archive: every private key and every certificate in it.
pub fn parse_pkcs12(path: &Path, bytes: &[u8], password: &str) -> Result<Bundle, LoadError> {
    let store = KeyStore::from_pkcs12(bytes, password, Pkcs12ImportPolicy::Relaxed).map_err(
        |e| match e {
            p12_keystore::error::Error::MacError(_) => LoadError::Pkcs12Password {
                path: path.to_owned(),
            },
            other => LoadError::Pkcs12 {
                path: path.to_owned(),
                detail: other.to_string(),
            },
        },
    )?;
    let mut bundle = Bundle::default();
    let add_cert = |bundle: &mut Bundle, der: &[u8]| {
        if !bundle.certs.iter().any(|c| c.der.as_ref() == der) {
            bundle.certs.push(SourcedCert {
                der: CertificateDer::from(der.to_vec()),
                path: path.to_owned(),
            });
        }
    };
    for (_alias, entry) in store.entries() {
        match entry {
            KeyStoreEntry::PrivateKeyChain(chain) => {
                bundle.keys.push(SourcedKey {
                    der: PrivateKeyDer::try_from(chain.key().as_der().to_vec()).map_err(|e| {
                        LoadError::UnsupportedKey {
                            path: path.to_owned(),
                            detail: e.to_string(),
                        }
                    })?,
                    path: path.to_owned(),
                });
                for cert in chain.certs() {
                    add_cert(&mut bundle, cert.as_der());
                }
            }
            KeyStoreEntry::Certificate(cert) => add_cert(&mut bundle, cert.as_der()),
            KeyStoreEntry::Secret(_) => {}
        }
    }
    if bundle.certs.is_empty() {
        return Err(LoadError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(bundle)
}
