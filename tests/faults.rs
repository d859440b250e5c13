//! Failing upstreams, blamed on the upstream and bounded: one that breaks its response off
//! (reset, or silence), answers garbage, or restarts under load. The real binary, real
//! clients; the upstreams are in `tests/common/faults.rs`.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use gatehouse_tests::faults::{Break, breaks_mid_body};
use gatehouse_tests::upstream::rt;
use gatehouse_tests::{STEP_TIMEOUT, connect};
use support::deploy::{ListenerToml, WAIT};
use support::probes::{portal_env, raw_http1, serve_portal};
use support::process::Gatehouse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A GET through an upstream that breaks its response off as `how` says: the client's
/// bytes, then the proxy for its metrics and log.
fn broken_off(how: Break, listener_lines: &str) -> (Vec<u8>, Gatehouse) {
    let env = portal_env();
    let (upstream, watch) = breaks_mid_body(how);
    let listener = ListenerToml::http(upstream)
        .certificates(&["portal"])
        .set(listener_lines);
    let config = env.config_with("access_log = true", &listener.to_toml());
    let g = Gatehouse::start(&config);
    let answer = rt().block_on(async {
        let (mut tls, _) = connect(g.addr("web"), Some("portal.test"))
            .await
            .expect("handshake");
        tls.write_all(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n")
            .await
            .expect("request");
        let mut got = Vec::new();
        let _ = tokio::time::timeout(STEP_TIMEOUT, tls.read_to_end(&mut got)).await;
        got
    });
    assert!(watch.now().requests >= 1);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        answer.len() < 1024 * 1024,
        "the client sees the response truncated"
    );
    assert!(
        g.wait_for_log(|l| l.contains("outcome=\"upstream_aborted\""), WAIT)
            .is_some(),
        "the access log says it was aborted: {}",
        g.log_text()
    );
    (answer, g)
}

#[test]
fn a_response_the_upstream_resets_mid_body_is_counted_logged_and_logged_as_aborted() {
    let (_, g) = broken_off(Break::Reset, "");
    assert_eq!(
        g.metric(r#"gatehouse_upstream_errors_total{kind="reset",listener="web"}"#),
        Some(1.0)
    );
    assert!(
        g.wait_for_log(|l| l.contains("broke off a response mid-body"), WAIT)
            .is_some(),
        "{}",
        g.log_text()
    );
}

#[test]
fn a_response_the_upstream_stalls_mid_body_is_cut_at_upstream_timeout() {
    let started = Instant::now();
    let (_, g) = broken_off(Break::Stall, "upstream_timeout = \"1s\"");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "cut long before the upstream's 30 s"
    );
    assert_eq!(
        g.metric(r#"gatehouse_upstream_errors_total{kind="timeout",listener="web"}"#),
        Some(1.0)
    );
    assert!(
        g.wait_for_log(|l| l.contains("sent no body bytes"), WAIT)
            .is_some(),
        "{}",
        g.log_text()
    );
}

#[test]
fn an_upstream_that_answers_garbage_is_a_502_blamed_on_it() {
    let upstream = gatehouse_tests::faults::answers_garbage();
    let (_env, g) = serve_portal(upstream, "");
    let answer = rt().block_on(raw_http1(
        g.addr("web"),
        "GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n",
    ));
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert_eq!(
        g.metric(r#"gatehouse_upstream_errors_total{kind="protocol",listener="web"}"#),
        Some(1.0)
    );
}

#[test]
fn an_upstream_that_restarts_under_load_costs_502s_while_down_and_nothing_after() {
    let upstream = gatehouse_tests::faults::Restartable::new();
    let (_env, g) = serve_portal(upstream.addr(), "");
    let addr = g.addr("web");
    let get = || {
        rt().block_on(async {
            let (mut send, _, _) = support::clients::portal_keep_alive(addr).await;
            let mut codes = Vec::new();
            for _ in 0..20 {
                // The connection takes the next request once the last one is done.
                send.ready()
                    .await
                    .expect("the client connection stays open");
                let resp =
                    tokio::time::timeout(STEP_TIMEOUT, support::clients::get_portal(&mut send))
                        .await
                        .expect("every request is answered in time")
                        .expect("answered");
                codes.push(resp.status().as_u16());
                let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            }
            codes
        })
    };
    assert!(get().iter().all(|c| *c == 200), "up: pooled connections");
    upstream.stop();
    let down = get();
    assert!(
        down.iter().all(|c| *c == 502),
        "down: 502 at once: {down:?}"
    );
    upstream.start();
    let back = get();
    assert!(
        back.iter().all(|c| *c == 200),
        "back: no request fails on a connection the restart killed: {back:?}"
    );
}
