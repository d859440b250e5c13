//! `gatehouse check`: a config and its certificates judged before they go live, every
//! problem in one pass, warnings that do not fail; `run` logs the same warnings.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use gatehouse_tests::LeafSpec;
use gatehouse_tests::upstream::{http_upstream, refused_addr};
use support::deploy::{Env, ListenerToml, WAIT, text};
use support::process::{Gatehouse, gatehouse_bin};

#[test]
fn check_exits_0_on_a_good_config_and_1_with_every_error_on_a_broken_one() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let dead = refused_addr();
    let config = env.config(
        &ListenerToml::http(dead.addr())
            .certificates(&["portal"])
            .to_toml(),
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("portal") && report.contains("portal.test") && report.contains("DAYS LEFT"),
        "{report}"
    );

    let expired = env
        .pki
        .inter
        .leaf_with(LeafSpec::new(&["portal.test"]).validity(-30, -1));
    env.pki.write_leaf(env.path(), "portal", &expired);
    let broken = env.config_file(
        "broken.toml",
        "",
        &ListenerToml::http(dead.addr())
            .certificates(&["portal"])
            .upstream(&format!("ftp://{}", dead.addr()))
            .to_toml(),
    );
    let out = check(&broken);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("ftp"),
        "config problems are reported: {}",
        text(&out)
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("expired"),
        "certificate problems are reported: {}",
        text(&out)
    );
}

#[test]
fn check_reports_config_and_certificate_problems_in_one_pass() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let expired = env
        .pki
        .inter
        .leaf_with(LeafSpec::new(&["portal.test"]).validity(-30, -1));
    env.pki.write_leaf(env.path(), "portal", &expired);
    let config = env.config(
        &ListenerToml::http(refused_addr().addr())
            .certificates(&["portal"])
            .set("idle_timeout = \"soon\"")
            .to_toml(),
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("idle_timeout = \"soon\" is not a duration") && all.contains("expired"),
        "the config's problem and the certificate's, in one run: {all}"
    );
}

#[test]
fn check_warns_about_what_works_but_is_risky_and_run_logs_the_same() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let upstream = http_upstream("portal");
    let listener = ListenerToml::http(upstream)
        .certificates(&["portal"])
        .route("engine.test", upstream);
    let config = env.config(&listener.to_toml());
    let key = env.path().join("portal.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check(&config);
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings do not fail: {}",
        text(&out)
    );
    let all = text(&out);
    for expected in [
        "route server_name \"engine.test\" is covered by none of its certificates (portal)",
        &format!("run `chmod 600 {}`", key.display()),
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    let g = Gatehouse::start(&config);
    assert!(
        g.wait_for_log(|l| l.contains("WARN") && l.contains("chmod 600"), WAIT)
            .is_some(),
        "run logs the same warnings: {}",
        g.log_text()
    );
    drop(g);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check(&config);
    assert!(!text(&out).contains("chmod"), "{}", text(&out));
}

/// `gatehouse check --config CONFIG`, run to completion.
fn check(config: &std::path::Path) -> std::process::Output {
    Command::new(gatehouse_bin())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("check")
}
