//! The operations surface driven as an operator would: `/metrics` scraped with curl,
//! `/certs`, `/healthz` while draining, JSON and access logs, the startup's expiry
//! warnings. Reloads (`POST /reload`, `gatehouse reload`) are in `reloads.rs`.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use gatehouse_tests::upstream::{http_upstream, refused_addr, rt};
use gatehouse_tests::{connect, write};
use serde_json::Value;
use support::clients::curl_status;
use support::deploy::{Env, ListenerToml, WAIT, curl_with_root, portal_and_engine, text};
use support::process::Gatehouse;

fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn scrape(g: &Gatehouse) -> String {
    let (body, code) = curl_status(&[&g.admin_url("/metrics")]);
    assert_eq!(code, "200", "{body}");
    body
}

fn not_after(env: &Env, name: &str) -> i64 {
    let pem = std::fs::read(env.path().join(format!("{name}.crt"))).expect("cert file");
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse");
    cert.validity().not_after.timestamp()
}

use rustls_pki_types::pem::PemObject;

#[test]
fn metrics_show_expiry_reloads_and_traffic() {
    let (mut env, g) = portal_and_engine("");
    let m = scrape(&g);
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_certificate_expiry_timestamp_seconds{certificate="portal"}"#
        ),
        Some(not_after(&env, "portal") as f64),
        "the expiry gauge is the certificate's notAfter:\n{m}"
    );
    let info = format!(
        r#"gatehouse_certificate_info{{certificate="engine",issuer="CN=Gatehouse rcgen Intermediate",serial="{}"}}"#,
        env.serials["engine"]
    );
    assert_eq!(metric(&m, &info), Some(1.0), "{m}");
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_certificate_reloads_total{result="success"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        metric(&m, "gatehouse_certificate_reload_timestamp_seconds").is_some_and(|t| t > 1.7e9),
        "{m}"
    );

    let addr = g.addr("web");
    for _ in 0..3 {
        assert!(text(&env.curl(addr, "portal.test", "/", &[])).contains("upstream=portal"));
    }
    let _ = env.curl(addr, "unknown.test", "/", &[]); // handshake ok (default cert), curl refuses the name
    let m = scrape(&g);
    assert!(
        metric(
            &m,
            r#"gatehouse_tls_handshakes_total{listener="web",result="ok"}"#
        )
        .is_some_and(|v| v >= 3.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_http_requests_total{code="200",listener="web"}"#
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_http_request_duration_seconds_count{listener="web"}"#
        ),
        Some(3.0),
        "{m}"
    );
    assert!(
        m.contains(r#"gatehouse_connections_active{listener="web"}"#),
        "{m}"
    );

    // A good reload counts as success, a partly failed one as failure.
    let new_serial = env.issue("portal", &["portal.test"]);
    let (body, code) = curl_status(&["-X", "POST", &g.admin_url("/reload")]);
    assert_eq!(code, "200", "{body}");
    let m = scrape(&g);
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_certificate_reloads_total{result="success"}"#
        ),
        Some(2.0),
        "{m}"
    );
    assert!(
        m.contains(&format!("serial=\"{new_serial}\"")),
        "info follows the reload:\n{m}"
    );
    write(env.path(), "engine.key", "not a key");
    let (body, code) = curl_status(&["-X", "POST", &g.admin_url("/reload")]);
    assert_eq!(code, "409", "{body}");
    let m = scrape(&g);
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_certificate_reloads_total{result="failure"}"#
        ),
        Some(1.0),
        "{m}"
    );
}

#[test]
fn upstream_errors_are_counted_by_kind() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let dead = refused_addr();
    let config = env.config(
        &ListenerToml::http(dead.addr())
            .certificates(&["portal"])
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    let _ = env.curl(g.addr("web"), "portal.test", "/", &[]);
    let m = scrape(&g);
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_upstream_errors_total{kind="connect",listener="web"}"#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"gatehouse_http_requests_total{code="502",listener="web"}"#
        ),
        Some(1.0),
        "{m}"
    );
}

#[test]
fn certs_json_matches_the_served_chain_and_holds_no_key() {
    let (env, g) = portal_and_engine("");
    let (body, code) = curl_status(&[&g.admin_url("/certs")]);
    assert_eq!(code, "200");
    assert!(!body.contains("PRIVATE KEY"), "never key material: {body}");
    let certs: Value = serde_json::from_str(&body).expect("JSON");
    let portal = certs
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "portal"))
        .expect("portal in /certs");
    let (_, chain) = rt()
        .block_on(connect(g.addr("web"), Some("portal.test")))
        .expect("handshake");
    assert_eq!(portal["serial"], env.serials["portal"].as_str());
    assert_eq!(
        portal["sha256_fingerprint"],
        certstore::fingerprint(&chain[0]).as_str()
    );
    let subjects: Vec<String> = chain
        .iter()
        .map(|c| {
            x509_parser::parse_x509_certificate(c)
                .expect("parse")
                .1
                .subject()
                .to_string()
        })
        .collect();
    assert_eq!(
        portal["chain"],
        serde_json::json!(subjects),
        "chain in served order"
    );
    assert_eq!(portal["names"], serde_json::json!(["portal.test"]));
    assert!(
        portal["days_left"]
            .as_i64()
            .is_some_and(|d| (88..=90).contains(&d)),
        "{portal}"
    );
    for key in [
        "subject",
        "issuer",
        "not_before",
        "not_after",
        "warnings",
        "source_files",
        "loaded_at",
    ] {
        assert!(!portal[key].is_null(), "/certs has {key}: {portal}");
    }
}

#[test]
fn healthz_is_200_while_serving_and_503_while_draining() {
    let (env, mut g) = portal_and_engine("");
    let (body, code) = curl_status(&[&g.admin_url("/healthz")]);
    assert_eq!((body.as_str(), code.as_str()), ("ok", "200"));
    let addr = g.addr("web");
    let root = env.path().join("root.pem");
    let slow =
        std::thread::spawn(move || curl_with_root(&root, addr, "portal.test", "/slow/2000", &[]));
    std::thread::sleep(Duration::from_millis(400));
    g.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    let (body, code) = curl_status(&[&g.admin_url("/healthz")]);
    assert_eq!((body.as_str(), code.as_str()), ("draining", "503"));
    assert!(text(&slow.join().expect("slow")).contains("slow=2000"));
    assert!(g.wait_exit(WAIT).expect("exit").success());
}

#[test]
fn json_logs_with_an_access_log_line_per_request() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let config = env.config_with(
        "log_format = \"json\"\naccess_log = true\n",
        &ListenerToml::http(http_upstream("portal"))
            .certificates(&["portal"])
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    let out = env.curl(
        g.addr("web"),
        "portal.test",
        "/download/12345?q=1",
        &["-o", "/dev/null"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let line = g
        .wait_for_log(|l| l.contains("\"path\":\"/download/12345?q=1\""), WAIT)
        .unwrap_or_else(|| panic!("no access log line:\n{}", g.log_text()));
    let entry: Value = serde_json::from_str(&line).expect("every log line is JSON");
    let f = &entry["fields"];
    assert_eq!(f["listener"], "web");
    assert_eq!(f["sni"], "portal.test");
    assert_eq!(f["method"], "GET");
    assert_eq!(f["status"], 200);
    assert_eq!(f["bytes"], 12345);
    assert!(
        f["upstream"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{f}"
    );
    assert!(f["duration_ms"].as_f64().is_some(), "{f}");
    for l in g.log_lines() {
        assert!(serde_json::from_str::<Value>(&l).is_ok(), "not JSON: {l}");
    }
}

#[test]
fn startup_warns_about_certificates_expiring_within_30_days() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let soon = env
        .pki
        .inter
        .leaf_with(gatehouse_tests::LeafSpec::new(&["portal.test"]).validity(-60, 10));
    env.pki.write_leaf(env.path(), "portal", &soon);
    let config = env.config(
        &ListenerToml::http(http_upstream("portal"))
            .certificates(&["portal"])
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    let line = g.wait_for_log(|l| l.contains("WARN") && l.contains("expires in"), WAIT);
    assert!(line.is_some(), "{}", g.log_text());
}
