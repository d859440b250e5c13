//! Reloads as an operator asks for them: `POST /reload` with and without the token,
//! `gatehouse reload` and its exit codes, its fallback to SIGHUP through the pid file; and
//! the admin API's refusal to listen beyond loopback without a token.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;

use gatehouse_tests::upstream::http_upstream;
use gatehouse_tests::write;
use support::clients::curl_status;
use support::deploy::{Env, ListenerToml, WAIT, portal_and_engine, text};
use support::process::{Gatehouse, gatehouse_bin};

#[test]
fn post_reload_needs_the_token_when_one_is_configured() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    write(
        env.path(),
        "admin.token",
        "0123456789abcdef0123456789abcdef\n",
    );
    let upstream = http_upstream("portal");
    let config = env.config_with(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n",
        &ListenerToml::http(upstream)
            .certificates(&["portal"])
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    let (_, code) = curl_status(&["-X", "POST", &g.admin_url("/reload")]);
    assert_eq!(code, "401", "no token");
    let (_, code) = curl_status(&[
        "-X",
        "POST",
        "-H",
        "Authorization: Bearer wrong",
        &g.admin_url("/reload"),
    ]);
    assert_eq!(code, "401", "wrong token");
    let (body, code) = curl_status(&[
        "-X",
        "POST",
        "-H",
        "Authorization: Bearer 0123456789abcdef0123456789abcdef",
        &g.admin_url("/reload"),
    ]);
    assert_eq!(code, "200", "{body}");
    let (_, code) = curl_status(&[&g.admin_url("/metrics")]);
    assert_eq!(code, "200", "GETs need no token");
    let out = Command::new(gatehouse_bin())
        .args(["reload", "--config"])
        .arg(&config)
        .output()
        .expect("reload");
    assert_eq!(
        out.status.code(),
        Some(0),
        "gatehouse reload sends the token: {}",
        text(&out)
    );
}

#[test]
fn gatehouse_reload_exits_0_when_clean_and_1_when_something_kept_its_previous_version() {
    let (mut env, g) = portal_and_engine("");
    let config = env.path().join("gatehouse.toml");
    let new_serial = env.issue("portal", &["portal.test"]);
    let out = Command::new(gatehouse_bin())
        .args(["reload", "--config"])
        .arg(&config)
        .output()
        .expect("reload");
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains("NAME") && report.contains("updated") && report.contains(&new_serial),
        "{report}"
    );
    assert!(report.contains("unchanged"), "{report}");

    write(env.path(), "engine.crt", "");
    let out = Command::new(gatehouse_bin())
        .args(["reload", "--config"])
        .arg(&config)
        .output()
        .expect("reload");
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("kept_previous") && report.contains("engine.crt is empty"),
        "{report}"
    );
    drop(g);
}

#[test]
fn gatehouse_reload_falls_back_to_sighup_through_the_pid_file() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let upstream = http_upstream("portal");
    let config = env.config_with(
        "pid_file = \"gatehouse.pid\"\n[admin]\nenabled = false\n",
        &ListenerToml::http(upstream)
            .certificates(&["portal"])
            .to_toml(),
    );
    let g = Gatehouse::start(&config);
    assert!(g.admin.is_none());
    let out = Command::new(gatehouse_bin())
        .args(["reload", "--config"])
        .arg(&config)
        .output()
        .expect("reload");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("pid {}", g.pid())),
        "{}",
        text(&out)
    );
    assert!(
        g.wait_for_log(|l| l.contains("SIGHUP: reloading"), WAIT)
            .is_some(),
        "{}",
        g.log_text()
    );
}

#[test]
fn admin_refuses_a_non_loopback_bind_without_a_token() {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let config = env.config_with(
        "[admin]\nlisten = \"0.0.0.0:0\"\n",
        &ListenerToml::http(http_upstream("portal"))
            .certificates(&["portal"])
            .to_toml(),
    );
    for verb in ["check", "run"] {
        let out = Command::new(gatehouse_bin())
            .args([verb, "--config"])
            .arg(&config)
            .output()
            .expect(verb);
        assert!(!out.status.success(), "{verb} must refuse: {}", text(&out));
        assert!(text(&out).contains("token_file"), "{verb}: {}", text(&out));
    }
}
