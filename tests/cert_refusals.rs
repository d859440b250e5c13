//! Certificates as operators receive them that are refused, each with an error that names
//! the file and says what to do, or loaded with a warning: encrypted or mismatched keys,
//! weak keys and signatures, missing names, bad and misplaced files, chains the trust
//! anchors refuse, validity out of range.

#[path = "support/loading.rs"]
mod loading;

use std::path::Path;

use certstore::{CertSpec, LoadError, Warning};
use gatehouse_tests::{LeafSpec, Pki, temp_dir};
use loading::*;

#[test]
fn encrypted_pem_keys_are_refused_with_advice() {
    for key in ["leaf-ecp256.enc.key", "leaf-rsa2048.enc.key"] {
        let err = fails(&files("leaf-ecp256.crt", key, None));
        assert!(
            matches!(err, LoadError::EncryptedKey { .. }),
            "{key}: {err:?}"
        );
        assert_mentions(&err, &fixture(key));
        assert!(err.to_string().contains("PKCS#12"), "{err}");
    }
}

#[test]
fn key_that_matches_no_certificate_is_refused() {
    let err = fails(&files("leaf-ecp256.crt", "mismatch.key", Some("inter.crt")));
    assert!(matches!(err, LoadError::KeyMismatch { .. }), "{err:?}");
    assert_mentions(&err, &fixture("mismatch.key"));
    assert_mentions(&err, &fixture("leaf-ecp256.crt"));
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
    assert_mentions(&err, &fixture("leaf-rsa1024.crt"));
}

#[test]
fn sha1_and_md5_signatures_are_refused() {
    for (name, algorithm) in [("leaf-sha1", "SHA-1"), ("leaf-md5", "MD5")] {
        let err = fails(&files(&format!("{name}.crt"), &format!("{name}.key"), None));
        match &err {
            LoadError::WeakSignature { algorithm: a, .. } => assert_eq!(*a, algorithm),
            other => panic!("{name}: expected a weak signature error, got {other:?}"),
        }
        assert_mentions(&err, &fixture(&format!("{name}.crt")));
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
            assert_mentions(&err, &fixture(file));
        }
    }
    let err = fails(&files("does-not-exist.crt", "leaf-ecp256.key", None));
    assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
    assert_mentions(&err, &fixture("does-not-exist.crt"));
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
    spec.trust_anchors = Some(fixture("root.crt"));
    let cert = loads(&spec);
    assert!(
        !cert
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::IncompleteChain { .. })),
        "verified to an anchor, the chain is complete: {:?}",
        cert.warnings
    );
    spec.trust_anchors = Some(fixture("other-root.crt"));
    let err = fails(&spec);
    assert!(matches!(err, LoadError::Untrusted { .. }), "{err:?}");
    // Without the intermediate the leaf cannot reach the root.
    let mut spec = files("leaf-ecp256.crt", "leaf-ecp256.key", None);
    spec.trust_anchors = Some(fixture("root.crt"));
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
