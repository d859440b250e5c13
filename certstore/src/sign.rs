//! How certificates' keys sign handshakes: aws-lc-rs keys as rustls loads them, with RSA
//! keys preferring SHA-256.
//!
//! rustls' RSA keys sign with the longest hash the client offers: RSA-PSS with SHA-512
//! whenever the client lists it, which every client does. SHA-512 buys nothing on a
//! 2048- to 4096-bit RSA key (the key, not the hash, bounds the strength) and costs more
//! than SHA-256: CPUs accelerate SHA-256 and most lack SHA-512 instructions. OpenSSL-based
//! servers (nginx, HAProxy) follow the client's order, which puts SHA-256 first, so
//! browsers see the same scheme from Gatehouse as from them. Keys of other kinds (ECDSA,
//! Ed25519) have their hash fixed by the key and are loaded as they are.

use std::sync::Arc;

use rustls::crypto::KeyProvider;
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

/// RSA schemes from the cheapest to sign to the dearest; PSS before PKCS#1 v1.5 at every
/// hash, as rustls orders them.
pub(crate) const RSA_SCHEMES: [SignatureScheme; 6] = [
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

/// aws-lc-rs' key loading, with RSA keys wrapped in [`RsaPreferSha256`].
#[derive(Debug)]
pub(crate) struct Keys;

impl KeyProvider for Keys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        let key = aws_lc_keys().load_private_key(key_der)?;
        Ok(match key.algorithm() {
            SignatureAlgorithm::RSA => Arc::new(RsaPreferSha256(key)),
            _ => key,
        })
    }

    fn fips(&self) -> bool {
        aws_lc_keys().fips()
    }
}

/// rustls' own aws-lc-rs key provider, which [`Keys`] wraps.
fn aws_lc_keys() -> &'static dyn KeyProvider {
    rustls::crypto::aws_lc_rs::default_provider().key_provider
}

/// An RSA key that signs with the first of [`RSA_SCHEMES`] the peer offers.
#[derive(Debug)]
struct RsaPreferSha256(Arc<dyn SigningKey>);

impl SigningKey for RsaPreferSha256 {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        RSA_SCHEMES
            .iter()
            .find(|s| offered.contains(s))
            .and_then(|s| self.0.choose_scheme(std::slice::from_ref(s)))
            // A scheme the key refuses: whatever it picks itself.
            .or_else(|| self.0.choose_scheme(offered))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        self.0.public_key()
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::SignatureScheme as S;

    fn load(kp: &rcgen::KeyPair) -> Arc<dyn SigningKey> {
        let der = PrivateKeyDer::try_from(kp.serialize_der()).unwrap();
        Keys.load_private_key(der).unwrap()
    }

    /// What an OpenSSL 3 client offers in TLS 1.3, in its order (ECDSA first).
    const OPENSSL_OFFER: [S; 9] = [
        S::ECDSA_NISTP256_SHA256,
        S::ECDSA_NISTP384_SHA384,
        S::ECDSA_NISTP521_SHA512,
        S::ED25519,
        S::RSA_PSS_SHA256,
        S::RSA_PSS_SHA384,
        S::RSA_PSS_SHA512,
        S::RSA_PKCS1_SHA256,
        S::RSA_PKCS1_SHA512,
    ];

    #[test]
    fn rsa_keys_sign_with_sha256_when_offered() {
        let key = load(&rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap());
        let scheme = |offered: &[S]| key.choose_scheme(offered).map(|s| s.scheme());
        assert_eq!(scheme(&OPENSSL_OFFER), Some(S::RSA_PSS_SHA256));
        // The offer's order does not matter: SHA-256 is cheapest for us.
        assert_eq!(
            scheme(&[S::RSA_PSS_SHA512, S::RSA_PSS_SHA384, S::RSA_PSS_SHA256]),
            Some(S::RSA_PSS_SHA256)
        );
        // Without SHA-256 PSS, the next cheapest PSS; PKCS#1 only when PSS is not offered.
        assert_eq!(
            scheme(&[S::RSA_PKCS1_SHA256, S::RSA_PSS_SHA512, S::RSA_PSS_SHA384]),
            Some(S::RSA_PSS_SHA384)
        );
        assert_eq!(
            scheme(&[S::RSA_PKCS1_SHA512, S::RSA_PKCS1_SHA256]),
            Some(S::RSA_PKCS1_SHA256)
        );
        assert_eq!(scheme(&[S::ECDSA_NISTP256_SHA256, S::ED25519]), None);
        let signer = key.choose_scheme(&OPENSSL_OFFER).unwrap();
        assert!(!signer.sign(b"transcript").unwrap().is_empty());
    }

    #[test]
    fn other_keys_are_loaded_as_they_are() {
        let key = load(&rcgen::KeyPair::generate().unwrap());
        assert_eq!(key.algorithm(), SignatureAlgorithm::ECDSA);
        assert_eq!(
            key.choose_scheme(&OPENSSL_OFFER).map(|s| s.scheme()),
            Some(S::ECDSA_NISTP256_SHA256)
        );
        assert!(key.public_key().is_some());
    }
}
