//! Policy: what a certificate must be to serve, and what only deserves a warning.

use crate::chain::Parsed;
use crate::error::{LoadError, Warning};
use crate::time::Timestamp;
use x509_parser::public_key::PublicKey;

/// Smallest RSA modulus browsers accept.
pub const MIN_RSA_BITS: usize = 2048;
/// Longest lifetime browsers accept for publicly trusted certificates (CA/B Forum).
pub const MAX_LIFETIME_DAYS: i64 = 397;
/// Warn this many days before expiry: enough time to get a renewal through a CA.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Signature algorithms clients reject, by OID.
const WEAK_SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.2", "MD2"),
    ("1.2.840.113549.1.1.4", "MD5"),
    ("1.2.840.113549.1.1.5", "SHA-1"),
    ("1.3.14.3.2.29", "SHA-1"),
    ("1.2.840.10045.4.1", "SHA-1"),
    ("1.2.840.10040.4.3", "SHA-1"),
];

/// What a certificate is for: the name rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// Served to clients: needs subject alternative names.
    #[default]
    Server,
    /// Presented to upstreams (mutual TLS): identified by its subject, names optional.
    Client,
}

/// Checks every served certificate (leaf first) and returns the warnings for the leaf.
pub(crate) fn check_served(
    served: &[&Parsed<'_>],
    now: Timestamp,
) -> Result<Vec<Warning>, LoadError> {
    check_served_for(served, now, Purpose::Server)
}

pub(crate) fn check_served_for(
    served: &[&Parsed<'_>],
    now: Timestamp,
    purpose: Purpose,
) -> Result<Vec<Warning>, LoadError> {
    for cert in served {
        check_validity(cert, now)?;
        check_signature(cert)?;
        check_key_strength(cert)?;
    }
    let leaf = served[0];
    if purpose == Purpose::Server {
        check_names(leaf)?;
        Ok(leaf_warnings(leaf, now))
    } else {
        Ok(leaf_warnings(leaf, now)
            .into_iter()
            .filter(|w| !matches!(w, Warning::CommonNameNotInSans { .. }))
            .collect())
    }
}

pub(crate) fn not_before(cert: &Parsed<'_>) -> Timestamp {
    Timestamp(cert.x509.validity().not_before.timestamp())
}

pub(crate) fn not_after(cert: &Parsed<'_>) -> Timestamp {
    Timestamp(cert.x509.validity().not_after.timestamp())
}

fn check_validity(cert: &Parsed<'_>, now: Timestamp) -> Result<(), LoadError> {
    if now < not_before(cert) {
        return Err(LoadError::NotYetValid {
            path: cert.path.to_owned(),
            subject: cert.subject(),
            not_before: not_before(cert),
            now,
        });
    }
    if now > not_after(cert) {
        return Err(LoadError::Expired {
            path: cert.path.to_owned(),
            subject: cert.subject(),
            not_after: not_after(cert),
            now,
        });
    }
    Ok(())
}

/// The name of a weak signature algorithm, if the certificate uses one.
pub(crate) fn weak_signature(cert: &Parsed<'_>) -> Option<&'static str> {
    let oid = cert.x509.signature_algorithm.algorithm.to_id_string();
    WEAK_SIGNATURES
        .iter()
        .find(|(weak, _)| *weak == oid)
        .map(|(_, name)| *name)
}

fn check_signature(cert: &Parsed<'_>) -> Result<(), LoadError> {
    match weak_signature(cert) {
        Some(algorithm) => Err(LoadError::WeakSignature {
            path: cert.path.to_owned(),
            subject: cert.subject(),
            algorithm,
        }),
        None => Ok(()),
    }
}

/// Bits of an RSA modulus, counted from its big-endian bytes.
pub(crate) fn rsa_bits(modulus: &[u8]) -> usize {
    let significant = match modulus.iter().position(|&b| b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    significant.len() * 8 - significant[0].leading_zeros() as usize
}

pub(crate) fn check_key_strength(cert: &Parsed<'_>) -> Result<(), LoadError> {
    if let Ok(PublicKey::RSA(rsa)) = cert.x509.public_key().parsed() {
        let bits = rsa_bits(rsa.modulus);
        if bits < MIN_RSA_BITS {
            return Err(LoadError::WeakRsaKey {
                path: cert.path.to_owned(),
                subject: cert.subject(),
                bits,
            });
        }
    }
    Ok(())
}

fn check_names(leaf: &Parsed<'_>) -> Result<(), LoadError> {
    match leaf.x509.subject_alternative_name() {
        Ok(Some(san)) if !san.value.general_names.is_empty() => Ok(()),
        _ => Err(LoadError::NoSubjectAltName {
            path: leaf.path.to_owned(),
            subject: leaf.subject(),
        }),
    }
}

fn leaf_warnings(leaf: &Parsed<'_>, now: Timestamp) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let lifetime = not_before(leaf).days_until(not_after(leaf));
    if lifetime > MAX_LIFETIME_DAYS {
        warnings.push(Warning::LongLifetime { days: lifetime });
    }
    let days_left = now.days_until(not_after(leaf));
    if days_left < EXPIRY_WARNING_DAYS {
        warnings.push(Warning::ExpiresSoon {
            days_left,
            not_after: not_after(leaf),
        });
    }
    let names = crate::info::dns_names(&leaf.x509);
    for cn in leaf.x509.subject().iter_common_name() {
        if let Ok(cn) = cn.as_str() {
            let lower = cn.to_ascii_lowercase();
            if !names.contains(&lower) && !crate::info::ip_addresses(&leaf.x509).contains(&lower) {
                warnings.push(Warning::CommonNameNotInSans {
                    common_name: cn.to_owned(),
                });
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::rsa_bits;

    #[test]
    fn rsa_bits_ignores_der_sign_byte() {
        let mut m = vec![0u8];
        m.extend([0x80; 256]);
        assert_eq!(rsa_bits(&m), 2048);
        assert_eq!(rsa_bits(&[0x7f; 128]), 1023);
        assert_eq!(rsa_bits(&[]), 0);
    }
}
