//! Loading one certificate as `certstore` does, from the openssl-CLI fixtures, with the
//! checks the loading tests share. Used by `cert_loading.rs` and `cert_refusals.rs`.
#![allow(dead_code)]

use std::path::Path;

use certstore::{CertSpec, LoadError, LoadedCert, Source, Timestamp};
pub use gatehouse_tests::fixture;

pub fn files(cert: &str, key: &str, chain: Option<&str>) -> CertSpec {
    CertSpec {
        name: "portal".into(),
        source: Source::Files {
            cert: fixture(cert),
            key: fixture(key),
            chain: chain.map(fixture),
        },
        trust_anchors: None,
        ocsp: None,
    }
}

pub fn pkcs12(file: &str, password: &str) -> CertSpec {
    CertSpec {
        name: "portal".into(),
        source: Source::Pkcs12 {
            path: fixture(file),
            password_file: fixture(password),
        },
        trust_anchors: None,
        ocsp: None,
    }
}

pub fn load(spec: &CertSpec) -> Result<LoadedCert, LoadError> {
    LoadedCert::load(spec, Timestamp::now(), &Default::default())
}

pub fn loads(spec: &CertSpec) -> LoadedCert {
    load(spec).unwrap_or_else(|e| panic!("expected {spec:?} to load, got: {e}"))
}

pub fn fails(spec: &CertSpec) -> LoadError {
    match load(spec) {
        Ok(c) => panic!("expected {spec:?} to fail, it loaded {:?}", c.chain),
        Err(e) => e,
    }
}

/// The served chain's subjects, leaf first.
pub fn subjects(cert: &LoadedCert) -> Vec<String> {
    cert.chain.iter().map(|c| c.subject.clone()).collect()
}

pub const LEAF: &str = "CN=leaf.test";
pub const INTER: &str = "CN=Gatehouse Test Intermediate";

pub fn assert_leaf_then_intermediate(cert: &LoadedCert) {
    assert_eq!(
        subjects(cert),
        vec![LEAF, INTER],
        "served chain must be leaf then intermediate"
    );
    assert_eq!(cert.certified_key.cert.len(), 2);
    assert_eq!(cert.leaf().dns_names, vec!["leaf.test", "www.leaf.test"]);
}

pub fn assert_mentions(err: &LoadError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error must name the file {}: {msg}",
        path.display()
    );
}
