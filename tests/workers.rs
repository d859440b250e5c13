//! Worker threads: every worker gets its share of the connections, whichever accepted
//! them, and a connection moved to another worker is served there like any other.

#[path = "support/mod.rs"]
mod support;

use gatehouse_tests::upstream::{http_upstream, rt};
use support::clients::{get_portal, portal_keep_alive};
use support::deploy::{Env, ListenerToml, WAIT};
use support::process::{Gatehouse, poll_until};

/// `gatehouse_worker_connections` of workers 0 and 1.
fn per_worker(g: &Gatehouse) -> [f64; 2] {
    [0, 1].map(|w| {
        g.metric(&format!("gatehouse_worker_connections{{worker=\"{w}\"}}"))
            .unwrap_or(-1.0)
    })
}

#[test]
fn connections_opened_one_after_another_are_spread_evenly_over_the_workers() {
    const CONNECTIONS: usize = 8;
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let g = Gatehouse::start(&env.config_with("workers = 2", &listener.to_toml()));
    let addr = g.addr("web");
    let mut held = Vec::new();
    for i in 0..CONNECTIONS {
        // Answered before the next one opens, so each was counted on its worker by then;
        // whichever worker woke first accepted it.
        let (mut send, _, conn) = rt().block_on(portal_keep_alive(addr));
        let resp = rt()
            .block_on(get_portal(&mut send))
            .unwrap_or_else(|e| panic!("connection {i} is answered on its worker: {e}"));
        assert_eq!(resp.status(), 200, "connection {i}");
        held.push((send, conn));
    }
    assert_eq!(
        per_worker(&g),
        [4.0, 4.0],
        "{CONNECTIONS} connections held open are spread 4 and 4 over the 2 workers"
    );
    drop(held);
    let left = poll_until(WAIT, || Some(per_worker(&g)).filter(|n| *n == [0.0, 0.0]));
    assert_eq!(
        left.unwrap_or_else(|| per_worker(&g)),
        [0.0, 0.0],
        "closed connections leave their worker's count"
    );
}
