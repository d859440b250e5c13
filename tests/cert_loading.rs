//! Loading certificates as operators receive them: files made by the `openssl` CLI (see
//! `fixtures/make-fixtures.sh`) and by rcgen, good and bad.

use std::path::{Path, PathBuf};

use certstore::{CertSpec, LoadError, LoadedCert, Source, Timestamp, Warning};
use gatehouse_tests::{LeafSpec, Pki, openssl_fixtures, temp_dir, write};

fn fx(name: &str) -> PathBuf {
    openssl_fixtures().join(name)
}

fn files(cert: &str, key: &str, chain: Option<&str>) -> CertSpec {
    CertSpec {
        name: "portal".into(),
        source: Source::Files {
            cert: fx(cert),
            key: fx(key),
            chain: chain.map(fx),
        },
        trust_anchors: None,
        ocsp: None,
    }
}

fn pkcs12(file: &str, password: &str) -> CertSpec {
    CertSpec {
        name: "portal".into(),
        source: Source::Pkcs12 {
            path: fx(file),
            password_file: fx(password),
        },
        trust_anchors: None,
        ocsp: None,
    }
}

fn load(spec: &CertSpec) -> Result<LoadedCert, LoadError> {
    LoadedCert::load(spec, Timestamp::now(), &Default::default())
}

fn loads(spec: &CertSpec) -> LoadedCert {
    load(spec).unwrap_or_else(|e| panic!("expected {spec:?} to load, got: {e}"))
}

fn fails(spec: &CertSpec) -> LoadError {
    match load(spec) {
        Ok(c) => panic!("expected {spec:?} to fail, it loaded {:?}", c.chain),
        Err(e) => e,
    }
}

/// The served chain's subjects, leaf first.
fn subjects(cert: &LoadedCert) -> Vec<String> {
    cert.chain.iter().map(|c| c.subject.clone()).collect()
}

const LEAF: &str = "CN=leaf.test";
const INTER: &str = "CN=Gatehouse Test Intermediate";

fn assert_leaf_then_intermediate(cert: &LoadedCert) {
    assert_eq!(
        subjects(cert),
        vec![LEAF, INTER],
        "served chain must be leaf then intermediate"
    );
    assert_eq!(cert.certified_key.cert.len(), 2);
    assert_eq!(cert.leaf().dns_names, vec!["leaf.test", "www.leaf.test"]);
}

fn assert_mentions(err: &LoadError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error must name the file {}: {msg}",
        path.display()
    );
}

#[test]
fn pem_leaf_key_and_chain_file_load_with_the_intermediate_served() {
    let cert = loads(&files(
        "leaf-ecp256.crt",
        "leaf-ecp256.key",
        Some("inter.crt"),
    ));
    assert_leaf_then_intermediate(&cert);
    assert_eq!(cert.leaf().key, "ECDSA P-256");
    assert!(
        cert.warnings.is_empty(),
        "a chain that stops at an intermediate below its root is the normal case, not a warning: {:?}",
        cert.warnings
    );
}

#[test]
fn crlf_bundle_with_text_around_the_blocks_loads() {
    let cert = loads(&files("fullchain-crlf.pem", "leaf-ecp256.key", None));
    assert_leaf_then_intermediate(&cert);
}

#[test]
fn leaf_last_bundle_is_reordered_with_a_warning() {
    let cert = loads(&files("reversed.pem", "leaf-ecp256.key", None));
    assert_leaf_then_intermediate(&cert);
    assert!(
        cert.warnings.contains(&Warning::Reordered),
        "{:?}",
        cert.warnings
    );
}

#[test]
fn root_duplicates_and_unrelated_certificates_are_dropped_with_warnings() {
    let cert = loads(&files("messy-bundle.pem", "leaf-ecp256.key", None));
    assert_leaf_then_intermediate(&cert);
    let w = &cert.warnings;
    assert!(
        w.contains(&Warning::DroppedDuplicate {
            subject: INTER.into()
        }),
        "{w:?}"
    );
    assert!(
        w.contains(&Warning::DroppedRoot {
            subject: "CN=Gatehouse Test Root".into()
        }),
        "{w:?}"
    );
    assert!(
        w.contains(&Warning::DroppedUnrelated {
            subject: "CN=Unrelated Test Root".into()
        }),
        "{w:?}"
    );
    assert!(w.contains(&Warning::Reordered), "{w:?}");
    assert!(
        !w.iter()
            .any(|w| matches!(w, Warning::IncompleteChain { .. })),
        "a chain that reaches its root is complete: {w:?}"
    );
}

#[test]
fn certificate_and_key_in_one_file_load_in_either_order() {
    assert_leaf_then_intermediate(&loads(&files("combined.pem", "combined.pem", None)));
    assert_leaf_then_intermediate(&loads(&files(
        "combined-keyfirst.pem",
        "combined-keyfirst.pem",
        None,
    )));
}

#[test]
fn der_certificates_and_keys_load() {
    assert_leaf_then_intermediate(&loads(&files(
        "leaf-ecp256.der",
        "leaf-ecp256.key.der",
        Some("inter.der"),
    )));
    assert_leaf_then_intermediate(&loads(&files(
        "leaf-ecp256.cer",
        "leaf-ecp256.key",
        Some("inter.der"),
    )));
    let rsa = loads(&files(
        "leaf-rsa2048.crt",
        "leaf-rsa2048.pkcs1.key.der",
        Some("inter.crt"),
    ));
    assert_eq!(rsa.leaf().key, "RSA 2048");
}

#[test]
fn every_key_format_and_type_loads() {
    for (cert, key, kind) in [
        ("leaf-ecp256.crt", "leaf-ecp256.sec1.key", "ECDSA P-256"),
        ("leaf-ecp384.crt", "leaf-ecp384.key", "ECDSA P-384"),
        ("leaf-ed25519.crt", "leaf-ed25519.key", "Ed25519"),
        ("leaf-rsa2048.crt", "leaf-rsa2048.key", "RSA 2048"),
        ("leaf-rsa2048.crt", "leaf-rsa2048.pkcs1.key", "RSA 2048"),
        ("leaf-rsa4096.crt", "leaf-rsa4096.key", "RSA 4096"),
    ] {
        let loaded = loads(&files(cert, key, Some("inter.crt")));
        assert_leaf_then_intermediate(&loaded);
        assert_eq!(loaded.leaf().key, kind, "{cert} with {key}");
    }
}

#[test]
fn pkcs12_with_password_loads_modern_and_legacy() {
    for file in [
        "leaf-ecp256.p12",
        "leaf-ecp256-legacy.p12",
        "leaf-rsa2048.p12",
    ] {
        let cert = loads(&pkcs12(file, "password.txt"));
        assert_leaf_then_intermediate(&cert);
    }
}

#[test]
fn wrong_pkcs12_password_is_its_own_error() {
    let err = fails(&pkcs12("leaf-ecp256.p12", "wrong-password.txt"));
    assert!(matches!(err, LoadError::Pkcs12Password { .. }), "{err:?}");
    assert_mentions(&err, &fx("leaf-ecp256.p12"));
    assert!(err.to_string().contains("password file"), "{err}");
}

#[test]
fn encrypted_pem_keys_are_refused_with_advice() {
    for key in ["leaf-ecp256.enc.key", "leaf-rsa2048.enc.key"] {
        let err = fails(&files("leaf-ecp256.crt", key, None));
        assert!(
            matches!(err, LoadError::EncryptedKey { .. }),
            "{key}: {err:?}"
        );
        assert_mentions(&err, &fx(key));
        assert!(err.to_string().contains("PKCS#12"), "{err}");
    }
}

#[test]
fn key_that_matches_no_certificate_is_refused() {
    let err = fails(&files("leaf-ecp256.crt", "mismatch.key", Some("inter.crt")));
    assert!(matches!(err, LoadError::KeyMismatch { .. }), "{err:?}");
    assert_mentions(&err, &fx("mismatch.key"));
    assert_mentions(&err, &fx("leaf-ecp256.crt"));
    let err = fails(&files("intermediate-only.pem", "leaf-ecp256.key", None));
    assert!(matches!(err, LoadError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn weak_rsa_key_is_refused() {
    let err = fails(&files(
        "leaf-rsa1024.crt",
        "leaf-rsa1024.key",
        Some("inter.crt"),
    ));
    assert!(
        matches!(err, LoadError::WeakRsaKey { bits: 1024, .. }),
        "{err:?}"
    );
    assert_mentions(&err, &fx("leaf-rsa1024.crt"));
}

#[test]
fn sha1_and_md5_signatures_are_refused() {
    for (name, algorithm) in [("leaf-sha1", "SHA-1"), ("leaf-md5", "MD5")] {
        let err = fails(&files(&format!("{name}.crt"), &format!("{name}.key"), None));
        match &err {
            LoadError::WeakSignature { algorithm: a, .. } => assert_eq!(*a, algorithm),
            other => panic!("{name}: expected a weak signature error, got {other:?}"),
        }
        assert_mentions(&err, &fx(&format!("{name}.crt")));
    }
}

#[test]
fn certificate_without_subject_alternative_name_is_refused() {
    let err = fails(&files(
        "leaf-nosan.crt",
        "leaf-nosan.key",
        Some("inter.crt"),
    ));
    assert!(matches!(err, LoadError::NoSubjectAltName { .. }), "{err:?}");
}

#[test]
fn common_name_missing_from_sans_is_a_warning() {
    let cert = loads(&files(
        "leaf-cn-mismatch.crt",
        "leaf-cn-mismatch.key",
        Some("inter.crt"),
    ));
    assert!(
        cert.warnings.contains(&Warning::CommonNameNotInSans {
            common_name: "other.test".into()
        }),
        "{:?}",
        cert.warnings
    );
}

#[test]
fn empty_garbage_truncated_and_missing_files_have_their_own_errors() {
    type IsExpected = fn(&LoadError) -> bool;
    let cases: [(&str, IsExpected); 4] = [
        ("empty.pem", |e| matches!(e, LoadError::Empty { .. })),
        ("garbage.pem", |e| {
            matches!(e, LoadError::Unrecognized { .. })
        }),
        ("truncated.pem", |e| {
            matches!(e, LoadError::MalformedPem { .. })
        }),
        ("notpem.txt", |e| {
            matches!(e, LoadError::Unrecognized { .. })
        }),
    ];
    for (file, expected) in cases {
        for spec in [
            files(file, "leaf-ecp256.key", None),
            files("leaf-ecp256.crt", file, None),
        ] {
            let err = fails(&spec);
            assert!(expected(&err), "{file}: unexpected error {err:?}");
            assert_mentions(&err, &fx(file));
        }
    }
    let err = fails(&files("does-not-exist.crt", "leaf-ecp256.key", None));
    assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
    assert_mentions(&err, &fx("does-not-exist.crt"));
    let err = fails(&pkcs12("leaf-ecp256.p12", "no-password-file.txt"));
    assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
    let err = fails(&pkcs12("garbage.pem", "password.txt"));
    assert!(matches!(err, LoadError::Pkcs12 { .. }), "{err:?}");
}

#[test]
fn a_pfx_given_as_certificate_says_to_configure_it_as_pkcs12() {
    let err = fails(&files("leaf-ecp256.p12", "leaf-ecp256.key", None));
    assert!(matches!(err, LoadError::IsPkcs12 { .. }), "{err:?}");
    assert!(err.to_string().contains("password_file"), "{err}");
}

#[test]
fn a_key_file_given_as_certificate_says_so() {
    let err = fails(&files("leaf-ecp256.key", "leaf-ecp256.key", None));
    assert!(matches!(err, LoadError::NoCertificate { .. }), "{err:?}");
    let err = fails(&files("leaf-ecp256.crt", "inter.crt", None));
    assert!(matches!(err, LoadError::NoPrivateKey { .. }), "{err:?}");
}

#[test]
fn trust_anchors_verify_the_chain_or_refuse_it() {
    let mut spec = files("leaf-ecp256.crt", "leaf-ecp256.key", Some("inter.crt"));
    spec.trust_anchors = Some(fx("root.crt"));
    let cert = loads(&spec);
    assert!(
        !cert
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::IncompleteChain { .. })),
        "verified to an anchor, the chain is complete: {:?}",
        cert.warnings
    );
    spec.trust_anchors = Some(fx("other-root.crt"));
    let err = fails(&spec);
    assert!(matches!(err, LoadError::Untrusted { .. }), "{err:?}");
    // Without the intermediate the leaf cannot reach the root.
    let mut spec = files("leaf-ecp256.crt", "leaf-ecp256.key", None);
    spec.trust_anchors = Some(fx("root.crt"));
    assert!(matches!(fails(&spec), LoadError::Untrusted { .. }));
}

fn rcgen_spec(dir: &Path, pki: &Pki, spec: LeafSpec<'_>) -> CertSpec {
    let leaf = pki.inter.leaf_with(spec);
    CertSpec {
        name: "engine".into(),
        source: pki.write_leaf(dir, "engine", &leaf),
        trust_anchors: None,
        ocsp: None,
    }
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let dir = temp_dir();
    let pki = Pki::new();
    let err = fails(&rcgen_spec(
        dir.path(),
        &pki,
        LeafSpec::new(&["engine.test"]).validity(-100, -1),
    ));
    assert!(matches!(err, LoadError::Expired { .. }), "{err:?}");
    assert!(err.to_string().contains("renew"), "{err}");
    let err = fails(&rcgen_spec(
        dir.path(),
        &pki,
        LeafSpec::new(&["engine.test"]).validity(2, 60),
    ));
    assert!(matches!(err, LoadError::NotYetValid { .. }), "{err:?}");
}

#[test]
fn long_lifetime_and_near_expiry_are_warnings() {
    let dir = temp_dir();
    let pki = Pki::new();
    let long = loads(&rcgen_spec(
        dir.path(),
        &pki,
        LeafSpec::new(&["engine.test"]).validity(-1, 800),
    ));
    assert!(
        long.warnings
            .iter()
            .any(|w| matches!(w, Warning::LongLifetime { .. })),
        "{:?}",
        long.warnings
    );
    let soon = loads(&rcgen_spec(
        dir.path(),
        &pki,
        LeafSpec::new(&["engine.test"]).validity(-60, 10),
    ));
    assert!(
        soon.warnings.iter().any(|w| matches!(
            w,
            Warning::ExpiresSoon {
                days_left: 9 | 10,
                ..
            }
        )),
        "{:?}",
        soon.warnings
    );
}

#[test]
fn rcgen_chain_with_wildcard_loads() {
    let dir = temp_dir();
    let pki = Pki::new();
    let leaf = pki.inter.leaf(&["*.example.com", "example.com"]);
    let path = write(
        dir.path(),
        "all.pem",
        format!("{}{}{}", pki.inter.cert_pem, leaf.key_pem, leaf.cert_pem),
    );
    let cert = loads(&CertSpec {
        name: "wild".into(),
        source: Source::Files {
            cert: path.clone(),
            key: path,
            chain: None,
        },
        trust_anchors: None,
        ocsp: None,
    });
    assert_eq!(cert.leaf().dns_names, vec!["*.example.com", "example.com"]);
    assert_eq!(cert.leaf().serial, leaf.serial());
    assert_eq!(cert.chain.len(), 2);
}

#[test]
fn pkcs7_bundles_are_read_as_certificates_or_chains_in_pem_and_der() {
    // A CA's .p7b (PEM) with the leaf and its intermediate, given as `cert`.
    let cert = loads(&files("chain.p7b", "leaf-ecp256.key", None));
    assert_leaf_then_intermediate(&cert);
    // The DER .p7c as `chain` beside the leaf.
    let cert = loads(&files(
        "leaf-ecp256.crt",
        "leaf-ecp256.key",
        Some("chain.p7c"),
    ));
    assert_leaf_then_intermediate(&cert);
}
