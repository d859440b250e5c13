//! Fixtures for the criterion benches: many certificates built in memory.

use certstore::{Bundle, ListenerSpec, LoadedCert, SourcedCert, SourcedKey, Store, Timestamp};
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;

/// A store with `n` certificates on one listener `"bench"`: certificate `i` covers
/// `host{i}.example.test` and `*.w{i}.example.test`. All share one key (selection does not
/// care), each has its own certificate.
pub fn store_with(n: usize) -> Store {
    let key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Bench CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca_params, KeyPair::generate().expect("ca key"));
    let now = Timestamp::now();
    let certs: Vec<LoadedCert> = (0..n)
        .map(|i| {
            let names = vec![
                format!("host{i}.example.test"),
                format!("*.w{i}.example.test"),
            ];
            let mut params = CertificateParams::new(names).expect("params");
            let start = time::OffsetDateTime::now_utc() - time::Duration::days(1);
            params.not_before = start;
            params.not_after = start + time::Duration::days(90);
            let cert = params.signed_by(&key, &issuer).expect("sign");
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
            LoadedCert::from_bundle(&format!("c{i}"), &bundle, None, Vec::new(), now)
                .expect("load bench certificate")
        })
        .collect();
    let listener = ListenerSpec {
        name: "bench".into(),
        certificates: certs.iter().map(|c| c.name.clone()).collect(),
        strict_sni: false,
    };
    Store::from_loaded(certs, &[listener])
}
