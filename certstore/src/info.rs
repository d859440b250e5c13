//! What operators see of a certificate: names, issuer, dates, key, fingerprint.
//!
//! Computed once when a certificate is loaded, so reports, `/certs` and metrics never parse
//! anything again. Holds no key material.

use std::net::IpAddr;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::public_key::PublicKey;

use crate::chain::Parsed;
use crate::time::Timestamp;
use crate::validate;

/// One certificate as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Colon-separated lowercase hex, as `openssl x509 -serial` shows it without colons.
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// DNS subject alternative names, lowercased (wildcards as `*.example.com`).
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// SHA-256 of the DER certificate, uppercase hex with colons (as browsers show it).
    pub fingerprint_sha256: String,
    /// Key algorithm and size, e.g. "ECDSA P-256", "RSA 2048", "Ed25519".
    pub key: String,
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub self_signed: bool,
}

impl CertInfo {
    pub(crate) fn of(cert: &Parsed<'_>) -> Self {
        let x = &cert.x509;
        Self {
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            serial: x.raw_serial_as_string(),
            not_before: validate::not_before(cert),
            not_after: validate::not_after(cert),
            dns_names: dns_names(x),
            ip_addresses: ip_addresses(x),
            fingerprint_sha256: fingerprint(cert.der.as_ref()),
            key: key_description(x),
            signature_algorithm: oid2sn(&x.signature_algorithm.algorithm, oid_registry())
                .map(str::to_owned)
                .unwrap_or_else(|_| x.signature_algorithm.algorithm.to_id_string()),
            is_ca: x.is_ca(),
            self_signed: cert.is_self_signed(),
        }
    }

    /// What a certificate received from a peer says (a client's, in mutual TLS); `None`
    /// when the bytes are not a certificate.
    pub fn from_der(der: &rustls_pki_types::CertificateDer<'static>) -> Option<Self> {
        let cert = crate::parse::SourcedCert {
            der: der.clone(),
            path: std::path::PathBuf::from("peer"),
        };
        crate::chain::Parsed::parse(&cert)
            .ok()
            .map(|p| Self::of(&p))
    }

    /// DNS names and IP addresses, for display.
    pub fn names(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .chain(self.ip_addresses.iter())
            .cloned()
            .collect()
    }

    /// Whole days from `now` until expiry (negative once expired).
    pub fn days_left(&self, now: Timestamp) -> i64 {
        now.days_until(self.not_after)
    }
}

fn general_names<'a>(x: &'a X509Certificate<'_>) -> Vec<&'a GeneralName<'a>> {
    match x.subject_alternative_name() {
        Ok(Some(san)) => san.value.general_names.iter().collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn dns_names(x: &X509Certificate<'_>) -> Vec<String> {
    general_names(x)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

pub(crate) fn ip_addresses(x: &X509Certificate<'_>) -> Vec<String> {
    general_names(x)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// SHA-256 fingerprint, uppercase hex pairs joined by colons.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (DER): the key pin of HPKP and curl's
/// `--pinnedpubkey`. `None` for bytes that are not a certificate.
pub fn spki_sha256(der: &[u8]) -> Option<[u8; 32]> {
    let (_, x) = x509_parser::parse_x509_certificate(der).ok()?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, x.public_key().raw);
    digest.as_ref().try_into().ok()
}

fn key_description(x: &X509Certificate<'_>) -> String {
    let spki = x.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", validate::rsa_bits(rsa.modulus)),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".into(),
                Some("1.3.132.0.34") => "ECDSA P-384".into(),
                Some("1.3.132.0.35") => "ECDSA P-521".into(),
                Some(other) => format!("ECDSA curve {other}"),
                None => "ECDSA".into(),
            }
        }
        _ => oid2sn(&spki.algorithm.algorithm, oid_registry())
            .map(|sn| match sn {
                "ed25519" => "Ed25519".to_owned(),
                other => other.to_owned(),
            })
            .unwrap_or_else(|_| spki.algorithm.algorithm.to_id_string()),
    }
}
