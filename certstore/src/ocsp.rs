//! OCSP stapling: a DER OCSP response from a file (`ocsp = "FILE"`), checked before it is
//! stapled: it must answer for this certificate, be signed by its issuer (or a responder
//! the issuer delegated to), and be current. A response that fails is not stapled: a
//! client that requires a good staple would refuse a bad one, and one that does not
//! would gain nothing.
//!
//! `x509-ocsp` (RustCrypto) parses the response; signatures are verified with the same
//! aws-lc-rs algorithms rustls verifies handshakes with.

use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm};
use x509_cert::Certificate;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus, SingleResponse};

use crate::time::Timestamp;

/// `id-pkix-ocsp-basic`: the only response type there is in practice.
const ID_PKIX_OCSP_BASIC: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// `id-kp-OCSPSigning`: the extended key usage of a delegated responder.
const ID_KP_OCSP_SIGNING: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const ID_CE_EXT_KEY_USAGE: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.5.29.37");
const SHA1: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// How far the responder's clock may run ahead of ours.
const CLOCK_SKEW_SECS: i64 = 300;

/// What a stapled response says of the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    Good,
    /// Revoked: stapled all the same (clients decide), and logged as an error.
    Revoked {
        at: Timestamp,
    },
    /// The responder does not know the certificate.
    Unknown,
}

impl OcspStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Revoked { .. } => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

/// What became of a certificate's configured OCSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stapling {
    Stapled(Staple),
    Refused { path: PathBuf, reason: OcspError },
}

/// A checked OCSP response, ready to staple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staple {
    pub path: PathBuf,
    pub status: OcspStatus,
    pub this_update: Timestamp,
    /// When the response stops being current; `None` when the responder gave no bound.
    pub next_update: Option<Timestamp>,
}

/// Why an OCSP response was not stapled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    #[error("cannot read it: {0}")]
    Read(String),
    #[error("not a DER OCSP response ({0}); fetch it with `openssl ocsp … -respout FILE`")]
    Malformed(String),
    #[error("the responder answered \"{0}\", not a status")]
    NotSuccessful(String),
    #[error("it answers for another certificate (serial or issuer differ)")]
    OtherCertificate,
    #[error("it is not signed by the certificate's issuer or a responder the issuer delegated to")]
    BadSignature,
    #[error("it is not current: valid from {this_update} to {next_update}, now {now}")]
    NotCurrent {
        this_update: Timestamp,
        next_update: String,
        now: Timestamp,
    },
    #[error("the certificate's issuer is not in the chain, so the response cannot be checked")]
    NoIssuer,
}

/// Reads and checks the response in `path` for `leaf`, issued by `issuer`.
pub fn load(
    path: &Path,
    leaf: &CertificateDer<'_>,
    issuer: Option<&CertificateDer<'_>>,
    now: Timestamp,
) -> Result<(Vec<u8>, Staple), OcspError> {
    let der = std::fs::read(path).map_err(|e| OcspError::Read(e.to_string()))?;
    let issuer = issuer.ok_or(OcspError::NoIssuer)?;
    let checked = check(&der, leaf, issuer, now)?;
    Ok((
        der,
        Staple {
            path: path.to_owned(),
            ..checked
        },
    ))
}

/// Checks a DER OCSP response for `leaf`, issued by `issuer`, at `now`.
pub fn check(
    response: &[u8],
    leaf: &CertificateDer<'_>,
    issuer: &CertificateDer<'_>,
    now: Timestamp,
) -> Result<Staple, OcspError> {
    let malformed = |e: der::Error| OcspError::Malformed(e.to_string());
    let response = OcspResponse::from_der(response).map_err(malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::NotSuccessful(format!(
            "{:?}",
            response.response_status
        )));
    }
    let bytes = response
        .response_bytes
        .filter(|b| b.response_type == ID_PKIX_OCSP_BASIC)
        .ok_or_else(|| OcspError::Malformed("no basic response in it".into()))?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(malformed)?;
    let leaf = Certificate::from_der(leaf.as_ref()).map_err(malformed)?;
    let issuer = Certificate::from_der(issuer.as_ref()).map_err(malformed)?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| answers_for(r, &leaf, &issuer))
        .ok_or(OcspError::OtherCertificate)?;
    // The signature is over the bytes as the responder wrote them.
    let tbs = first_element(bytes.response.as_bytes())
        .ok_or_else(|| OcspError::Malformed("no response data in it".into()))?;
    let signed_by_issuer = verifies(&basic, tbs, &issuer);
    let signed_by_delegate = || {
        basic
            .certs
            .iter()
            .flatten()
            .any(|responder| delegated(responder, &issuer) && verifies(&basic, tbs, responder))
    };
    if !signed_by_issuer && !signed_by_delegate() {
        return Err(OcspError::BadSignature);
    }
    let time = |t: &x509_ocsp::OcspGeneralizedTime| {
        Timestamp(i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX))
    };
    let this_update = time(&single.this_update);
    let next_update = single.next_update.as_ref().map(time);
    let too_early = this_update.unix_seconds() > now.unix_seconds() + CLOCK_SKEW_SECS;
    if too_early || next_update.is_some_and(|n| n.unix_seconds() < now.unix_seconds()) {
        return Err(OcspError::NotCurrent {
            this_update,
            next_update: next_update.map_or_else(|| "-".into(), |n| n.to_string()),
            now,
        });
    }
    let status = match &single.cert_status {
        CertStatus::Good(_) => OcspStatus::Good,
        CertStatus::Revoked(info) => OcspStatus::Revoked {
            at: time(&info.revocation_time),
        },
        CertStatus::Unknown(_) => OcspStatus::Unknown,
    };
    Ok(Staple {
        path: PathBuf::new(),
        status,
        this_update,
        next_update,
    })
}

/// Whether `single` is about `leaf`: its serial, its issuer's name and key, hashed as the
/// response says (SHA-1, as OpenSSL does by default, or SHA-256).
fn answers_for(single: &SingleResponse, leaf: &Certificate, issuer: &Certificate) -> bool {
    let id = &single.cert_id;
    let algorithm = match id.hash_algorithm.oid {
        SHA1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        SHA256 => &aws_lc_rs::digest::SHA256,
        _ => return false,
    };
    let Ok(issuer_name) = issuer.tbs_certificate.subject.to_der() else {
        return false;
    };
    let issuer_key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    id.serial_number == leaf.tbs_certificate.serial_number
        && leaf.tbs_certificate.issuer == issuer.tbs_certificate.subject
        && id.issuer_name_hash.as_bytes()
            == aws_lc_rs::digest::digest(algorithm, &issuer_name).as_ref()
        && id.issuer_key_hash.as_bytes()
            == aws_lc_rs::digest::digest(algorithm, issuer_key).as_ref()
}

/// Whether `responder` is a delegated OCSP responder of `issuer`: issued by it, with the
/// OCSP signing extended key usage.
fn delegated(responder: &Certificate, issuer: &Certificate) -> bool {
    let tbs = &responder.tbs_certificate;
    let ocsp_signing = tbs.extensions.iter().flatten().any(|ext| {
        ext.extn_id == ID_CE_EXT_KEY_USAGE
            && x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
                .is_ok_and(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING))
    });
    let Ok(signed) = tbs.to_der() else {
        return false;
    };
    ocsp_signing
        && tbs.issuer == issuer.tbs_certificate.subject
        && signature_valid(
            &responder.signature_algorithm,
            &signed,
            responder.signature.raw_bytes(),
            issuer,
        )
}

/// Whether the response's signature over `tbs` verifies with `signer`'s key.
fn verifies(basic: &BasicOcspResponse, tbs: &[u8], signer: &Certificate) -> bool {
    signature_valid(
        &basic.signature_algorithm,
        tbs,
        basic.signature.raw_bytes(),
        signer,
    )
}

/// Verifies `signature` over `message` with `signer`'s public key, using the verification
/// algorithm (of the rustls provider's) whose algorithm identifiers are those of the
/// signature and of the key.
fn signature_valid(
    algorithm: &spki::AlgorithmIdentifierOwned,
    message: &[u8],
    signature: &[u8],
    signer: &Certificate,
) -> bool {
    let spki = &signer.tbs_certificate.subject_public_key_info;
    let (Some(signature_id), Some(key_id)) = (contents(algorithm), contents(&spki.algorithm))
    else {
        return false;
    };
    crate::cert::provider()
        .signature_verification_algorithms
        .all
        .iter()
        .filter(|alg| {
            alg.signature_alg_id().as_ref() == signature_id.as_slice()
                && alg.public_key_alg_id().as_ref() == key_id.as_slice()
        })
        .any(|alg: &&dyn SignatureVerificationAlgorithm| {
            alg.verify_signature(spki.subject_public_key.raw_bytes(), message, signature)
                .is_ok()
        })
}

/// An AlgorithmIdentifier's DER without its SEQUENCE header, as webpki names algorithms.
fn contents(algorithm: &spki::AlgorithmIdentifierOwned) -> Option<Vec<u8>> {
    use der::Reader;
    let der = algorithm.to_der().ok()?;
    let mut reader = der::SliceReader::new(&der).ok()?;
    der::Header::decode(&mut reader).ok()?;
    let start = usize::try_from(reader.position()).ok()?;
    der.get(start..).map(<[u8]>::to_vec)
}

/// The first element of a DER SEQUENCE, header and all, as it stands in `der`.
fn first_element(der: &[u8]) -> Option<&[u8]> {
    use der::Reader;
    let mut reader = der::SliceReader::new(der).ok()?;
    der::Header::decode(&mut reader).ok()?;
    let start = usize::try_from(reader.position()).ok()?;
    let header = der::Header::decode(&mut reader).ok()?;
    let body = usize::try_from(reader.position()).ok()?;
    let end = body.checked_add(usize::try_from(header.length).ok()?)?;
    der.get(start..end)
}

/// `id-ad-ocsp`: the access method of an OCSP responder in Authority Information Access.
const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// The OCSP responder URL in `leaf`'s Authority Information Access, when it names one
/// over HTTP (as responders are reached).
pub fn responder_url(leaf: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => aia
                .accessdescs
                .iter()
                .filter(|d| d.access_method.to_id_string() == ID_AD_OCSP)
                .find_map(|d| match &d.access_location {
                    GeneralName::URI(uri) if uri.starts_with("http://") => Some(uri.to_string()),
                    _ => None,
                }),
            _ => None,
        })
}

/// A DER OCSP request for `leaf`, issued by `issuer`: one CertID (SHA-1, as responders
/// expect), no nonce (so responders may answer from cache).
pub fn request(
    leaf: &CertificateDer<'_>,
    issuer: &CertificateDer<'_>,
) -> Result<Vec<u8>, OcspError> {
    let malformed = |e: der::Error| OcspError::Malformed(e.to_string());
    let leaf = Certificate::from_der(leaf.as_ref()).map_err(malformed)?;
    let issuer = Certificate::from_der(issuer.as_ref()).map_err(malformed)?;
    let sha1 = &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY;
    let name = issuer.tbs_certificate.subject.to_der().map_err(malformed)?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let octets = |d: aws_lc_rs::digest::Digest| der::asn1::OctetString::new(d.as_ref().to_vec());
    let cert_id = x509_ocsp::CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned {
            oid: SHA1,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: octets(aws_lc_rs::digest::digest(sha1, &name)).map_err(malformed)?,
        issuer_key_hash: octets(aws_lc_rs::digest::digest(sha1, key)).map_err(malformed)?,
        serial_number: leaf.tbs_certificate.serial_number,
    };
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(malformed)
}
