//! The certificates page's guards as `curl` sees them: read-only without a token, the
//! login, session and CSRF checks, the security headers, HTTPS with `[admin] certificate`,
//! and the upload limit.

#[path = "support/mod.rs"]
mod support;

use support::console::{Curl, TOKEN, WITH_TOKEN, csrf, portal};

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
