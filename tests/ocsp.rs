//! OCSP stapling through the real binary: responses made by `openssl ocsp` (good,
//! revoked, another certificate's, a delegated responder's), seen by
//! `openssl s_client -status`.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use gatehouse_tests::openssl_fixtures;
use gatehouse_tests::upstream::http_upstream;
use support::deploy::{Env, ListenerToml};
use support::openssl::{OCSP_AS_INTERMEDIATE, openssl_in, p256_key, status_request};
use support::process::Gatehouse;
use support::tools::output_text;

/// OCSP responses made by `openssl ocsp` (the intermediate answering for itself) for the
/// openssl-made `leaf-ecp256`: `good.der`, `revoked.der`, and `other.der` (about
/// `leaf-rsa2048`), in `dir` with the leaf's files.
fn ocsp_responses(dir: &Path) {
    let fx = openssl_fixtures();
    for f in [
        "leaf-ecp256.crt",
        "leaf-ecp256.key",
        "inter.crt",
        "inter.key",
        "leaf-rsa2048.crt",
    ] {
        std::fs::copy(fx.join(f), dir.join(f)).expect("copy fixture");
    }
    let openssl = |args: &[&str]| openssl_in(dir, args);
    let serial = |cert: &str| {
        openssl(&["x509", "-in", cert, "-noout", "-serial"])
            .trim()
            .trim_start_matches("serial=")
            .to_owned()
    };
    let respond = |cert: &str, index: String, out: &str| {
        std::fs::write(dir.join("index.txt"), index).expect("index");
        openssl(&[
            "ocsp",
            "-issuer",
            "inter.crt",
            "-cert",
            cert,
            "-no_nonce",
            "-reqout",
            "req.der",
        ]);
        let answer = [
            "ocsp",
            "-index",
            "index.txt",
            "-reqin",
            "req.der",
            "-respout",
            out,
        ];
        openssl(&[&answer[..], &OCSP_AS_INTERMEDIATE[..]].concat());
    };
    // A responder the intermediate delegated to (extended key usage OCSPSigning).
    p256_key(dir, "responder.key");
    openssl(&[
        "req",
        "-new",
        "-key",
        "responder.key",
        "-subj",
        "/CN=OCSP responder",
        "-out",
        "responder.csr",
    ]);
    // The responder's key certified by the intermediate, with `ext` (and so with or
    // without OCSPSigning), then a response for the good leaf signed with it.
    let issue = |ext: &str, cert: &str, serial: &str| {
        std::fs::write(dir.join("responder.ext"), ext).expect("ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "responder.csr",
            "-CA",
            "inter.crt",
            "-CAkey",
            "inter.key",
            "-days",
            "2",
            "-set_serial",
            serial,
            "-extfile",
            "responder.ext",
            "-out",
            cert,
        ]);
    };
    let sign_with = |cert: &str, out: &str| {
        openssl(&[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            cert,
            "-rkey",
            "responder.key",
            "-CA",
            "inter.crt",
            "-issuer",
            "inter.crt",
            "-cert",
            "leaf-ecp256.crt",
            "-no_nonce",
            "-respout",
            out,
            "-ndays",
            "1",
        ]);
    };
    issue("extendedKeyUsage=OCSPSigning\n", "responder.crt", "4242");
    issue(
        "extendedKeyUsage=serverAuth\n",
        "not-a-responder.crt",
        "4343",
    );
    let (ecdsa, rsa) = (serial("leaf-ecp256.crt"), serial("leaf-rsa2048.crt"));
    std::fs::write(
        dir.join("index.txt"),
        format!("V\t301231235959Z\t\t{ecdsa}\tunknown\t/CN=leaf.test\n"),
    )
    .expect("index");
    sign_with("responder.crt", "delegated.der");
    sign_with("not-a-responder.crt", "undelegated.der");
    respond(
        "leaf-ecp256.crt",
        format!("V\t301231235959Z\t\t{ecdsa}\tunknown\t/CN=leaf.test\n"),
        "good.der",
    );
    respond(
        "leaf-ecp256.crt",
        format!("R\t301231235959Z\t240101000000Z\t{ecdsa}\tunknown\t/CN=leaf.test\n"),
        "revoked.der",
    );
    respond(
        "leaf-rsa2048.crt",
        format!("V\t301231235959Z\t\t{rsa}\tunknown\t/CN=leaf.test\n"),
        "other.der",
    );
}

/// The portal on the openssl-made leaf, stapling `ocsp.der`.
fn stapling_portal(env: &mut Env) -> Gatehouse {
    env.certificate_block(
        "portal",
        "cert = \"leaf-ecp256.crt\"\nkey = \"leaf-ecp256.key\"\nchain = \"inter.crt\"\nocsp = \"ocsp.der\"",
    );
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    Gatehouse::start(&env.config(&listener.to_toml()))
}

#[test]
fn a_good_ocsp_response_is_stapled_and_one_for_another_certificate_is_not() {
    let mut env = Env::new();
    ocsp_responses(env.path());
    std::fs::copy(env.path().join("other.der"), env.path().join("ocsp.der")).expect("cp");
    let g = stapling_portal(&mut env);
    let addr = g.addr("web");
    let refused = status_request(addr);
    assert!(
        refused.contains("OCSP response: no response sent"),
        "{refused}"
    );
    assert!(
        g.log_text()
            .contains("not stapled: it answers for another certificate"),
        "{}",
        g.log_text()
    );

    std::fs::copy(env.path().join("good.der"), env.path().join("ocsp.der")).expect("cp");
    let reload = Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", &g.admin_url("/reload")])
        .output()
        .expect("curl");
    assert!(reload.status.success(), "{}", output_text(&reload));
    let stapled = status_request(addr);
    assert!(
        stapled.contains("OCSP Response Status: successful"),
        "{stapled}\n{}",
        g.log_text()
    );
    assert!(stapled.contains("Cert Status: good"), "{stapled}");
    let certs = Command::new("curl")
        .args(["-sS", &g.admin_url("/certs")])
        .output()
        .expect("curl");
    assert!(
        output_text(&certs).contains("\"status\": \"good\""),
        "{}",
        output_text(&certs)
    );
    let series = r#"gatehouse_certificate_ocsp_expiry_timestamp_seconds{certificate="portal"}"#;
    assert!(
        g.metric(series) > Some(0.0),
        "the staple's nextUpdate is exported"
    );
}

#[test]
fn a_response_from_a_delegated_responder_is_stapled() {
    let mut env = Env::new();
    ocsp_responses(env.path());
    std::fs::copy(
        env.path().join("delegated.der"),
        env.path().join("ocsp.der"),
    )
    .expect("cp");
    let g = stapling_portal(&mut env);
    let stapled = status_request(g.addr("web"));
    assert!(
        stapled.contains("Cert Status: good") && stapled.contains("OCSP responder"),
        "{stapled}\n{}",
        g.log_text()
    );
}

#[test]
fn a_response_signed_by_a_certificate_that_is_no_responder_is_refused() {
    let mut env = Env::new();
    ocsp_responses(env.path());
    std::fs::copy(
        env.path().join("undelegated.der"),
        env.path().join("ocsp.der"),
    )
    .expect("cp");
    let g = stapling_portal(&mut env);
    let refused = status_request(g.addr("web"));
    assert!(
        refused.contains("OCSP response: no response sent"),
        "{refused}"
    );
    assert!(
        g.log_text()
            .contains("not stapled: it is not signed by the certificate's issuer"),
        "{}",
        g.log_text()
    );
}

#[test]
fn a_revoked_status_is_stapled_as_it_is_and_logged_as_an_error() {
    let mut env = Env::new();
    ocsp_responses(env.path());
    std::fs::copy(env.path().join("revoked.der"), env.path().join("ocsp.der")).expect("cp");
    let g = stapling_portal(&mut env);
    let stapled = status_request(g.addr("web"));
    assert!(stapled.contains("Cert Status: revoked"), "{stapled}");
    assert!(
        g.log_lines()
            .iter()
            .any(|l| l.contains("ERROR") && l.contains("REVOKED")),
        "{}",
        g.log_text()
    );
}

#[test]
fn a_response_outside_its_validity_is_refused_as_not_current() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let env = Env::new();
    ocsp_responses(env.path());
    let der = std::fs::read(env.path().join("good.der")).expect("good.der");
    let pem = |f: &str| CertificateDer::from_pem_file(env.path().join(f)).expect(f);
    let (leaf, issuer) = (pem("leaf-ecp256.crt"), pem("inter.crt"));
    let now = certstore::Timestamp::now();
    let current = certstore::check_ocsp(&der, &leaf, &issuer, now).expect("current now");
    let next_update = current.next_update.expect("openssl -ndays sets nextUpdate");
    for (when, at) in [
        ("after its nextUpdate", next_update.plus_days(1)),
        (
            "a day before its thisUpdate",
            current.this_update.plus_days(-1),
        ),
    ] {
        let refused = certstore::check_ocsp(&der, &leaf, &issuer, at);
        assert!(
            matches!(refused, Err(certstore::OcspError::NotCurrent { .. })),
            "{when}: a response that is not current is not stapled: {refused:?}"
        );
    }
}
