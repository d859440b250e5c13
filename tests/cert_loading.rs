//! Loading certificates as operators receive them: files made by the `openssl` CLI (see
//! `fixtures/make-fixtures.sh`) and by rcgen, in every format and order that loads. What
//! is refused or warned of is in `cert_refusals.rs`.

#[path = "support/loading.rs"]
mod loading;

use certstore::{CertSpec, LoadError, Source, Warning};
use gatehouse_tests::{Pki, temp_dir, write};
use loading::*;

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
    assert_mentions(&err, &fixture("leaf-ecp256.p12"));
    assert!(err.to_string().contains("password file"), "{err}");
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
