//! The certificates page's chores as `curl` drives them: a PFX and its password installed,
//! a CSR made on the page whose certificate comes back without a key, the internal CA
//! downloaded.

#[path = "support/mod.rs"]
mod support;

use gatehouse_tests::openssl_fixtures;
use gatehouse_tests::upstream::http_upstream;
use support::console::{Curl, WITH_TOKEN, hidden_field, portal};
use support::deploy::{Env, ListenerToml};
use support::openssl::{openssl_in, served_serial};
use support::process::Gatehouse;

#[test]
fn a_csr_made_on_the_page_takes_the_cas_answer_without_a_key() {
    let (env, g) = portal(WITH_TOKEN);
    let curl = Curl::new(env.path(), g.admin_url(""));
    let token = curl.log_in();
    let csr = curl.post(
        "/console/csr/portal",
        &[
            ("csrf", &token),
            ("common_name", "portal.test"),
            ("sans", "www.portal.test"),
            ("key_type", "ecdsa-p256"),
        ],
    );
    assert!(
        csr.body.contains("-----BEGIN CERTIFICATE REQUEST-----"),
        "the CSR downloads: {}",
        csr.body
    );
    assert!(
        !csr.body.contains("PRIVATE KEY"),
        "the key never leaves the appliance"
    );
    let key = env.path().join("state/console/csr/portal.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the CSR's key is written 0600");
    // The CA (openssl's, from the fixtures) answers the request.
    let dir = env.path();
    std::fs::write(dir.join("portal.csr"), &csr.body).expect("csr");
    for f in ["inter.crt", "inter.key"] {
        std::fs::copy(openssl_fixtures().join(f), dir.join(f)).expect("fixture");
    }
    openssl_in(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "portal.csr",
            "-CA",
            "inter.crt",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "90",
            "-copy_extensions",
            "copyall",
            "-out",
            "answer.crt",
        ],
    );
    let answer = curl.request(
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            &format!("cert=@{}", dir.join("answer.crt").display()),
            "-F",
            &format!("chain=@{}", dir.join("inter.crt").display()),
        ],
        "/console/replace/portal",
    );
    assert_eq!(
        answer.status, 200,
        "the dry run accepts it with the CSR's key: {}",
        answer.body
    );
    assert!(answer.body.contains("www.portal.test"), "{}", answer.body);
    let upload = hidden_field(&answer.body, "upload");
    let installed = curl.post("/console/install", &[("csrf", &token), ("upload", &upload)]);
    assert_eq!(installed.status, 303, "{}", installed.body);
    let page = curl.get("/");
    assert!(
        page.body.contains("Install of &quot;portal&quot;: done"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("www.portal.test"),
        "the table shows the new names: {}",
        page.body
    );
    let issued = openssl_in(dir, &["x509", "-in", "answer.crt", "-noout", "-serial"]);
    let served = served_serial(
        g.addr("web"),
        "www.portal.test",
        Some(&openssl_fixtures().join("root.crt")),
        dir,
    );
    assert_eq!(
        issued.trim().trim_start_matches("serial="),
        served,
        "the proxy serves the CA's answer, with the key of the page's CSR"
    );
}

#[test]
fn a_pfx_and_its_password_install_from_the_page() {
    let (env, g) = portal(WITH_TOKEN);
    let curl = Curl::new(env.path(), g.admin_url(""));
    let token = curl.log_in();
    let dir = env.path().join("from-the-ca");
    std::fs::create_dir_all(&dir).expect("dir");
    let renewal = env.pki.inter.leaf(&["portal.test"]);
    env.pki.write_leaf(&dir, "renewal", &renewal);
    openssl_in(
        &dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "renewal.crt",
            "-inkey",
            "renewal.key",
            "-certfile",
            "renewal.chain.pem",
            "-passout",
            "pass:s3cret pass",
            "-out",
            "renewal.pfx",
        ],
    );
    let upload = |password: &str| {
        curl.request(
            &[
                "-F",
                &format!("csrf={token}"),
                "-F",
                &format!("pkcs12=@{}", dir.join("renewal.pfx").display()),
                "-F",
                &format!("password={password}"),
            ],
            "/console/replace/portal",
        )
    };
    let wrong = upload("guessed");
    assert_eq!(
        wrong.status, 422,
        "a wrong PFX password is refused: {}",
        wrong.body
    );
    assert!(wrong.body.contains(r#"id="refused""#), "{}", wrong.body);
    assert!(
        wrong.body.contains("renewal.pfx"),
        "the refusal names the file the operator chose: {}",
        wrong.body
    );
    let right = upload("s3cret pass");
    assert_eq!(right.status, 200, "{}", right.body);
    assert!(
        !right.body.contains("s3cret") && !right.body.contains("PRIVATE KEY"),
        "neither the password nor the key is shown back: {}",
        right.body
    );
    let confirm = hidden_field(&right.body, "upload");
    let installed = curl.post(
        "/console/install",
        &[("csrf", &token), ("upload", &confirm)],
    );
    assert_eq!(installed.status, 303, "{}", installed.body);
    let served = served_serial(
        g.addr("web"),
        "portal.test",
        Some(&env.path().join("root.pem")),
        &dir,
    );
    let issued = openssl_in(&dir, &["x509", "-in", "renewal.crt", "-noout", "-serial"]);
    assert_eq!(
        issued.trim().trim_start_matches("serial="),
        served,
        "the PFX's certificate is served"
    );
    assert!(
        std::fs::read_dir(env.path().join("state/console/uploads"))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "an installed upload (key and password among it) is deleted"
    );
}

#[test]
fn download_ca_gives_the_internal_cas_certificate() {
    let mut env = Env::new();
    env.certificate_block("inside", "issuer = \"internal\"\nnames = [\"inside.test\"]");
    let listener = ListenerToml::http(http_upstream("inside")).certificates(&["inside"]);
    let g = Gatehouse::start(&env.config(&listener.to_toml()));
    let curl = Curl::new(env.path(), g.admin_url(""));
    let page = curl.get("/");
    assert!(
        page.body.contains(r#"id="download-ca""#) && page.body.contains("internal"),
        "the page links the internal CA and badges its certificate: {}",
        page.body
    );
    let ca = curl.get("/console/ca.pem");
    assert_eq!(ca.status, 200);
    assert!(
        ca.headers.contains("content-disposition: attachment"),
        "{}",
        ca.headers
    );
    let on_disk = std::fs::read_to_string(env.path().join("state/ca/ca.crt")).expect("ca.crt");
    assert_eq!(
        ca.body, on_disk,
        "the download is the internal CA's certificate"
    );
    assert!(!ca.body.contains("PRIVATE KEY"), "never its key");
}
