//! Fixtures for the criterion benches: many certificates built in memory or written as files,
//! and a rustls client and Gatehouse's server configuration driven against each other in
//! memory.
//!
//! # Layout
//! - [`store_with`], [`loaded_certs`], [`copy_loaded`]: certificates for selection and
//!   snapshot builds, made with rcgen in memory.
//! - [`write_certs`]: certificates as files, for reloads.
//! - [`tls`]: in-memory TLS 1.3 handshakes between a rustls client and the proxy's
//!   `ServerConfig`.

pub mod tls;

use std::path::Path;

use certstore::{
    Bundle, CertSpec, ListenerSpec, LoadedCert, SourcedCert, SourcedKey, Store, StoreConfig,
    Timestamp,
};
use gatehouse_tests::Pki;
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;

/// The one listener every bench fixture serves.
pub const LISTENER: &str = "bench";

/// `n` loaded certificates: certificate `i` is named `c{i}` and covers
/// `host{i}.example.test` and `*.w{i}.example.test`. All share one key (selection and
/// snapshot builds do not look at it), each has its own certificate.
pub fn loaded_certs(n: usize) -> Vec<LoadedCert> {
    loaded_certs_with("c", n, &KeyPair::generate().expect("key"))
}

/// [`loaded_certs`] named `{prefix}{i}`, all with `key`: an RSA key makes the RSA twins
/// of the ECDSA certificates, for selection by key type.
pub fn loaded_certs_with(prefix: &str, n: usize, key: &KeyPair) -> Vec<LoadedCert> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Bench CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca_params, KeyPair::generate().expect("ca key"));
    let now = Timestamp::now();
    (0..n)
        .map(|i| {
            let names = vec![
                format!("host{i}.example.test"),
                format!("*.w{i}.example.test"),
            ];
            let mut params = CertificateParams::new(names).expect("params");
            let start = time::OffsetDateTime::now_utc() - time::Duration::days(1);
            params.not_before = start;
            params.not_after = start + time::Duration::days(90);
            let cert = params.signed_by(key, &issuer).expect("sign");
            let bundle = Bundle {
                certs: vec![SourcedCert {
                    der: CertificateDer::from(cert.der().to_vec()),
                    path: PathBuf::from("memory"),
                }],
                keys: vec![SourcedKey {
                    der: PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
                    path: PathBuf::from("memory"),
                }],
            };
            LoadedCert::from_bundle(
                &format!("{prefix}{i}"),
                &bundle,
                None,
                Vec::new(),
                now,
                &Default::default(),
            )
            .expect("load bench certificate")
        })
        .collect()
}

/// The listener [`LISTENER`] serving `certs` in order (the first is the default).
pub fn listener_for<'a>(names: impl IntoIterator<Item = &'a str>) -> ListenerSpec {
    ListenerSpec {
        name: LISTENER.into(),
        certificates: names.into_iter().map(str::to_owned).collect(),
        strict_sni: false,
    }
}

/// A store with [`loaded_certs`]`(n)` on the listener [`LISTENER`].
pub fn store_with(n: usize) -> Store {
    let certs = loaded_certs(n);
    let listener = listener_for(certs.iter().map(|c| c.name.as_str()));
    Store::from_loaded(certs, &[listener])
}

/// A store whose `n` names each have an ECDSA and an RSA certificate (`c{i}`, `r{i}`, in
/// that order), on the listener [`LISTENER`].
pub fn store_with_both_key_types(n: usize) -> Store {
    let rsa = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let mut certs = Vec::new();
    for (ecdsa, rsa) in loaded_certs(n)
        .into_iter()
        .zip(loaded_certs_with("r", n, &rsa))
    {
        certs.extend([ecdsa, rsa]);
    }
    let listener = listener_for(certs.iter().map(|c| c.name.as_str()));
    Store::from_loaded(certs, &[listener])
}

/// A copy of `cert` sharing its `CertifiedKey`: what `Store::from_loaded` consumes, made
/// without parsing anything again, so that a bench can build stores over and over.
pub fn copy_loaded(cert: &LoadedCert) -> LoadedCert {
    LoadedCert {
        name: cert.name.clone(),
        certified_key: cert.certified_key.clone(),
        chain: cert.chain.clone(),
        warnings: cert.warnings.clone(),
        completed: cert.completed.clone(),
        sources: cert.sources.clone(),
        loaded_at: cert.loaded_at,
        ocsp: cert.ocsp.clone(),
    }
}

/// Writes `n` certificates into `dir` as an operator would have them — `c{i}.crt` (leaf),
/// `c{i}.key` and `c{i}.chain.pem` (intermediate) from one rcgen root → intermediate, each
/// with its own ECDSA P-256 key, covering `host{i}.example.test` — and returns the store
/// configuration that loads them all on the listener [`LISTENER`].
pub fn write_certs(dir: &Path, n: usize) -> StoreConfig {
    let pki = Pki::new();
    let certificates: Vec<CertSpec> = (0..n)
        .map(|i| {
            let name = format!("c{i}");
            let host = format!("host{i}.example.test");
            let leaf = pki.inter.leaf(&[host.as_str()]);
            CertSpec {
                source: pki.write_leaf(dir, &name, &leaf),
                name,
                trust_anchors: None,
                ocsp: None,
            }
        })
        .collect();
    let listener = listener_for(certificates.iter().map(|c| c.name.as_str()));
    StoreConfig {
        certificates,
        listeners: vec![listener],
        ..Default::default()
    }
}
