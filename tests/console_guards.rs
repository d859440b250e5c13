//! The certificates page as `curl` sees it: read-only without a token, the session and
//! CSRF guards, the security headers, HTTPS with `[admin] certificate`, the upload limit,
//! and a CSR made on the page whose certificate comes back without a key.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_tests::openssl_fixtures;
use gatehouse_tests::upstream::http_upstream;
use support::deploy::{Env, ListenerToml};
use support::openssl::{openssl_in, served_serial};
use support::process::Gatehouse;
use support::tools::output_text;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// `curl` with a cookie jar of its own, like one browser.
struct Curl {
    jar: PathBuf,
    base: String,
    /// Extra arguments for every request (`--cacert`, `--resolve`).
    extra: Vec<String>,
}

/// A response: status, headers (lower-cased names), body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Curl {
    fn new(dir: &Path, base: String) -> Self {
        Self {
            jar: dir.join("cookies.txt"),
            base,
            extra: Vec::new(),
        }
    }

    fn request(&self, args: &[&str], path: &str) -> Answer {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-D", "-", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(&self.extra)
            .args(args)
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("run curl");
        let text = output_text(&out);
        let mut text = text.as_str();
        // An upload that asked `Expect: 100-continue` has that interim answer first.
        while text.starts_with("HTTP/1.1 100") {
            text = text.split_once("\r\n\r\n").map_or("", |(_, rest)| rest);
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("an HTTP answer: {text}"));
        Answer {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.request(&[], path)
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let fields: Vec<String> = form
            .iter()
            .flat_map(|(k, v)| ["--data-urlencode".to_owned(), format!("{k}={v}")])
            .collect();
        let args: Vec<&str> = fields.iter().map(String::as_str).collect();
        self.request(&args, path)
    }

    fn log_in(&self) -> String {
        let answer = self.post("/login", &[("token", TOKEN)]);
        assert_eq!(
            answer.status, 303,
            "the right token logs in: {}",
            answer.body
        );
        csrf(&self.get("/certificate/portal").body)
    }
}

/// The CSRF token the page's forms carry.
fn csrf(page: &str) -> String {
    hidden_field(page, "csrf")
}

/// The value of the first hidden field `name` on `page` (the page's own forms write it as
/// `name="NAME" value="…"`).
fn hidden_field(page: &str, name: &str) -> String {
    let (_, rest) = page
        .split_once(&format!(r#"name="{name}" value=""#))
        .unwrap_or_else(|| panic!("the page has a form with {name}: {page}"));
    rest.split('"').next().unwrap_or_default().to_owned()
}

/// The portal, with `[admin]` as `admin` (`token_file` is written when it names "token").
fn portal(admin: &str) -> (Env, Gatehouse) {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    std::fs::write(env.path().join("token"), TOKEN).expect("token");
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let g = Gatehouse::start(&env.config_with(admin, &listener.to_toml()));
    (env, g)
}

const WITH_TOKEN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n";

#[test]
fn without_a_token_the_page_is_read_only() {
    let (env, g) = portal("");
    let curl = Curl::new(env.path(), g.admin_url(""));
    let page = curl.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(r#"<tr data-certificate="portal">"#),
        "{}",
        page.body
    );
    assert!(
        page.headers
            .contains("content-security-policy: default-src 'self'"),
        "no script or style from elsewhere: {}",
        page.headers
    );
    assert!(
        !page.body.contains("<form") && !page.body.contains("<script"),
        "read-only: no forms (and never a script): {}",
        page.body
    );
    let refused = curl.post("/console/reload", &[("csrf", "none")]);
    assert_eq!(refused.status, 403, "{}", refused.body);
    let css = curl.get("/console/console.css");
    assert!(
        css.status == 200 && css.headers.contains("text/css"),
        "{}",
        css.headers
    );
}

#[test]
fn forms_need_a_login_and_the_sessions_csrf_token() {
    let (env, g) = portal(WITH_TOKEN);
    let curl = Curl::new(env.path(), g.admin_url(""));
    let anonymous = curl.get("/");
    assert_eq!(anonymous.status, 303);
    assert!(
        anonymous.headers.contains("location: /login"),
        "{}",
        anonymous.headers
    );
    let wrong = curl.post("/login", &[("token", "not-the-token-at-all")]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("wrong token"), "{}", wrong.body);
    let login = curl.post("/login", &[("token", TOKEN)]);
    let cookie = login
        .headers
        .lines()
        .find(|l| l.starts_with("set-cookie: gatehouse_session="))
        .unwrap_or_else(|| panic!("a session cookie: {}", login.headers));
    for flag in ["httponly", "samesite=strict", "max-age="] {
        assert!(
            cookie.contains(flag),
            "the session cookie is {flag}: {cookie}"
        );
    }
    assert!(
        !cookie.contains("secure"),
        "plain HTTP: no Secure flag: {cookie}"
    );
    let token = csrf(&curl.get("/").body);
    let forged = curl.post("/console/reload", &[("csrf", "forged")]);
    assert_eq!(
        forged.status, 403,
        "a form without the session's CSRF token is refused"
    );
    let foreign = curl.request(
        &[
            "-H",
            "Origin: http://evil.example",
            "--data-urlencode",
            &format!("csrf={token}"),
        ],
        "/console/reload",
    );
    assert_eq!(
        foreign.status, 403,
        "a form posted from another origin is refused"
    );
    let reload = curl.post("/console/reload", &[("csrf", &token)]);
    assert_eq!(reload.status, 303, "{}", reload.body);
    let page = curl.get("/");
    assert!(
        page.body.contains(r#"<section id="flash""#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("updated") || page.body.contains("unchanged"),
        "{}",
        page.body
    );
    let logout = curl.post("/logout", &[("csrf", &token)]);
    assert!(
        logout.headers.contains("location: /login"),
        "{}",
        logout.headers
    );
    assert_eq!(
        curl.get("/").status,
        303,
        "logged out: the page asks for a login again"
    );
}

#[test]
fn an_upload_over_the_limit_is_refused() {
    let (env, g) = portal(WITH_TOKEN);
    let curl = Curl::new(env.path(), g.admin_url(""));
    let token = curl.log_in();
    let big = env.path().join("big.pem");
    std::fs::write(&big, vec![b'A'; 2 * 1024 * 1024]).expect("write");
    let answer = curl.request(
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            &format!("cert=@{}", big.display()),
        ],
        "/console/replace/portal",
    );
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("larger than"), "{}", answer.body);
}

#[test]
fn over_https_with_admin_certificate_the_cookie_is_secure() {
    let (env, g) = portal(&format!("{WITH_TOKEN}certificate = \"portal\"\n"));
    let admin = g.admin_url("").trim_start_matches("http://").to_owned();
    let port = admin.rsplit(':').next().unwrap_or_default();
    let mut curl = Curl::new(env.path(), format!("https://portal.test:{port}"));
    curl.extra = vec![
        "--cacert".into(),
        env.path().join("root.pem").display().to_string(),
        "--resolve".into(),
        format!("portal.test:{port}:127.0.0.1"),
    ];
    let login = curl.post("/login", &[("token", TOKEN)]);
    assert_eq!(login.status, 303, "{}", login.body);
    assert!(
        login.headers.contains("; secure"),
        "over HTTPS the session cookie is Secure: {}",
        login.headers
    );
    let page = curl.get("/");
    assert!(
        page.body.contains(r#"<tr data-certificate="portal">"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("admin"),
        "the table says the admin API uses it: {}",
        page.body
    );
}

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
