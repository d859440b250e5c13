//! Writing material back out: PEM (the `pem` crate; rustls' PEM module only reads) and
//! PKCS#12 (`p12-keystore`), for `certs install` and `certs restore`.

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why material could not be encoded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the private key cannot be converted to PKCS#8 for a PKCS#12 file")]
    KeyConversion,
    #[error("cannot build the PKCS#12 file: {0}")]
    Pkcs12(String),
}

/// Certificates as PEM blocks, in order.
pub fn certs_pem(certs: &[CertificateDer<'_>]) -> String {
    let blocks: Vec<pem::Pem> = certs
        .iter()
        .map(|c| pem::Pem::new("CERTIFICATE", c.as_ref()))
        .collect();
    pem::encode_many_config(
        &blocks,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A private key as PEM, with the label of its format (PKCS#8, PKCS#1 or SEC1).
pub fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem::encode_config(
        &pem::Pem::new(label, key.secret_der()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The key as PKCS#8 DER (what PKCS#12 files carry), converted with aws-lc-rs if needed.
pub fn key_pkcs8(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, EncodeError> {
    use aws_lc_rs::encoding::AsDer;
    match key {
        PrivateKeyDer::Pkcs8(k) => Ok(k.secret_pkcs8_der().to_vec()),
        PrivateKeyDer::Pkcs1(k) => {
            let kp = aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der())
                .map_err(|_| EncodeError::KeyConversion)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                kp.as_der().map_err(|_| EncodeError::KeyConversion)?;
            Ok(der.as_ref().to_vec())
        }
        PrivateKeyDer::Sec1(k) => {
            for alg in [
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            ] {
                if let Ok(kp) = aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(
                    alg,
                    k.secret_sec1_der(),
                ) && let Ok(doc) = kp.to_pkcs8v1()
                {
                    return Ok(doc.as_ref().to_vec());
                }
            }
            Err(EncodeError::KeyConversion)
        }
        _ => Err(EncodeError::KeyConversion),
    }
}

/// A PKCS#12 file holding `key` and `chain` (leaf first), protected by `password`.
pub fn pkcs12(
    chain: &[CertificateDer<'_>],
    key: &PrivateKeyDer<'_>,
    password: &str,
) -> Result<Vec<u8>, EncodeError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let fail = |e: p12_keystore::error::Error| EncodeError::Pkcs12(e.to_string());
    let key = PrivateKey::from_der(&key_pkcs8(key)?).map_err(fail)?;
    let certs = chain
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let local_key_id =
        crate::info::fingerprint(chain.first().map(|c| c.as_ref()).unwrap_or_default());
    let mut store = KeyStore::new();
    store.add_entry(
        "gatehouse",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.into_bytes(), key, certs)),
    );
    store.writer(password).write().map_err(fail)
}
