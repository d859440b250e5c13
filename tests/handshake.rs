//! Real TLS handshakes over 127.0.0.1 against certstore's resolver: the served chain per SNI
//! name, strict SNI, and atomic swaps on reload.

use std::path::Path;
use std::sync::Arc;

use certstore::{CertSpec, ListenerSpec, Outcome, Store, StoreConfig, Timestamp};
use gatehouse_tests::{
    EchoServer, LeafSpec, Pki, connect, echo_roundtrip, listener_tls, serial_of, temp_dir,
    verify_chain,
};
use rustls::AlertDescription;

fn spec(dir: &Path, pki: &Pki, name: &str, leaf: &gatehouse_tests::Leaf) -> CertSpec {
    CertSpec {
        name: name.into(),
        source: pki.write_leaf(dir, name, leaf),
        trust_anchors: None,
        ocsp: None,
    }
}

fn listener(name: &str, certs: &[&str], strict_sni: bool) -> ListenerSpec {
    ListenerSpec {
        name: name.into(),
        certificates: certs.iter().map(|s| s.to_string()).collect(),
        strict_sni,
    }
}

struct Setup {
    dir: tempfile::TempDir,
    pki: Pki,
    config: StoreConfig,
    serials: Vec<(String, String)>,
}

impl Setup {
    /// portal.test, engine.test and *.apps.test on one listener, portal first.
    fn new(strict_sni: bool) -> Self {
        let dir = temp_dir();
        let pki = Pki::new();
        let mut certificates = Vec::new();
        let mut serials = Vec::new();
        for (name, names) in [
            ("portal", vec!["portal.test"]),
            ("engine", vec!["engine.test"]),
            ("apps", vec!["*.apps.test"]),
        ] {
            let leaf = pki.inter.leaf(&names);
            serials.push((name.to_string(), leaf.serial()));
            certificates.push(spec(dir.path(), &pki, name, &leaf));
        }
        let config = StoreConfig {
            certificates,
            listeners: vec![listener("main", &["portal", "engine", "apps"], strict_sni)],
            ..Default::default()
        };
        Self {
            dir,
            pki,
            config,
            serials,
        }
    }

    fn serial(&self, name: &str) -> &str {
        &self
            .serials
            .iter()
            .find(|(n, _)| n == name)
            .expect("known cert")
            .1
    }
}

async fn served_serial(server: &EchoServer, sni: Option<&str>) -> (String, usize) {
    let (_, chain) = connect(server.addr, sni).await.expect("handshake");
    (serial_of(&chain[0]), chain.len())
}

#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_default() {
    let setup = Setup::new(false);
    let (store, _) = Store::load(&setup.config, Timestamp::now()).expect("first load");
    let server = EchoServer::start(listener_tls(&store, "main", false)).await;

    let (_, chain) = connect(server.addr, Some("engine.test"))
        .await
        .expect("handshake");
    assert_eq!(
        serial_of(&chain[0]),
        setup.serial("engine"),
        "exact SNI match serves that certificate"
    );
    assert_eq!(chain.len(), 2, "leaf and intermediate are served");
    assert_eq!(
        chain[1], setup.pki.inter.cert,
        "the intermediate follows the leaf"
    );
    verify_chain(&chain, &setup.pki.root.cert, "engine.test")
        .expect("a browser would accept the chain");

    let (serial, len) = served_serial(&server, Some("shop.apps.test")).await;
    assert_eq!(serial, setup.serial("apps"), "a wildcard covers one label");
    assert_eq!(len, 2);

    let (serial, _) = served_serial(&server, Some("deep.shop.apps.test")).await;
    assert_eq!(
        serial,
        setup.serial("portal"),
        "a wildcard does not cover two labels: default"
    );

    let (serial, _) = served_serial(&server, Some("unknown.test")).await;
    assert_eq!(
        serial,
        setup.serial("portal"),
        "unknown SNI gets the listener's first certificate"
    );

    let (serial, _) = served_serial(&server, None).await;
    assert_eq!(
        serial,
        setup.serial("portal"),
        "no SNI gets the listener's first certificate"
    );
}

fn alert_of(err: &std::io::Error) -> Option<AlertDescription> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[tokio::test]
async fn strict_sni_refuses_unknown_names_with_unrecognized_name() {
    let setup = Setup::new(true);
    let (store, _) = Store::load(&setup.config, Timestamp::now()).expect("first load");
    let server = EchoServer::start(listener_tls(&store, "main", true)).await;

    let (serial, _) = served_serial(&server, Some("portal.test")).await;
    assert_eq!(
        serial,
        setup.serial("portal"),
        "known names still work under strict_sni"
    );

    for sni in [Some("unknown.test"), None] {
        let Err(err) = connect(server.addr, sni).await else {
            panic!("strict_sni must refuse {sni:?}");
        };
        assert_eq!(
            alert_of(&err),
            Some(AlertDescription::UnrecognisedName),
            "{sni:?} must get the unrecognized_name alert, got {err}"
        );
    }
}

#[tokio::test]
async fn reload_is_seen_by_the_next_handshake_while_open_connections_keep_working() {
    let setup = Setup::new(false);
    let (store, _) = Store::load(&setup.config, Timestamp::now()).expect("first load");
    let server = EchoServer::start(listener_tls(&store, "main", false)).await;

    let (mut open, chain) = connect(server.addr, Some("portal.test"))
        .await
        .expect("handshake");
    assert_eq!(serial_of(&chain[0]), setup.serial("portal"));
    assert_eq!(
        echo_roundtrip(&mut open, b"before").await.expect("echo"),
        b"before"
    );

    let before = store.snapshot();
    let renewed = setup.pki.inter.leaf(&["portal.test"]);
    spec(setup.dir.path(), &setup.pki, "portal", &renewed);
    let report = store.reload(&setup.config);
    assert!(report.is_clean(), "{report}");
    assert!(
        matches!(
            report.entry("portal").map(|e| &e.outcome),
            Some(Outcome::Updated { .. })
        ),
        "{report}"
    );
    assert!(
        matches!(
            report.entry("engine").map(|e| &e.outcome),
            Some(Outcome::Unchanged(_))
        ),
        "{report}"
    );
    let after = store.snapshot();
    assert!(
        !Arc::ptr_eq(&before, &after),
        "a reload publishes a new snapshot"
    );
    assert!(
        Arc::ptr_eq(
            &before.certificate("engine").unwrap().certified_key,
            &after.certificate("engine").unwrap().certified_key
        ),
        "an unchanged certificate keeps serving the same key object, not a rebuilt one"
    );

    let (serial, _) = served_serial(&server, Some("portal.test")).await;
    assert_eq!(
        serial,
        renewed.serial(),
        "the next handshake sees the new certificate"
    );
    assert_eq!(
        echo_roundtrip(&mut open, b"after")
            .await
            .expect("open connection still works"),
        b"after"
    );
}

#[tokio::test]
async fn a_bad_certificate_keeps_its_previous_version_while_the_others_update() {
    let mut setup = Setup::new(false);
    let (store, _) = Store::load(&setup.config, Timestamp::now()).expect("first load");
    let server = EchoServer::start(listener_tls(&store, "main", false)).await;

    let portal = setup.pki.inter.leaf(&["portal.test"]);
    spec(setup.dir.path(), &setup.pki, "portal", &portal);
    let expired = setup
        .pki
        .inter
        .leaf_with(LeafSpec::new(&["engine.test"]).validity(-30, -1));
    spec(setup.dir.path(), &setup.pki, "engine", &expired);
    // Add one, drop one.
    let extra = setup.pki.inter.leaf(&["extra.test"]);
    setup.config.certificates.retain(|c| c.name != "apps");
    setup
        .config
        .certificates
        .push(spec(setup.dir.path(), &setup.pki, "extra", &extra));
    setup.config.listeners[0].certificates = vec!["portal".into(), "engine".into(), "extra".into()];

    let report = store.reload(&setup.config);
    assert!(
        !report.is_clean(),
        "a failed certificate makes the report unclean"
    );
    let outcome = |name: &str| {
        &report
            .entry(name)
            .unwrap_or_else(|| panic!("{name} in report"))
            .outcome
    };
    assert!(
        matches!(outcome("portal"), Outcome::Updated { .. }),
        "{report}"
    );
    match outcome("engine") {
        Outcome::KeptPrevious { serving, error } => {
            assert_eq!(serving.serial, setup.serial("engine"));
            assert!(
                matches!(error, certstore::LoadError::Expired { .. }),
                "{error}"
            );
        }
        other => panic!("engine must keep its previous version, got {other:?}"),
    }
    assert!(matches!(outcome("extra"), Outcome::Added(_)), "{report}");
    assert!(matches!(outcome("apps"), Outcome::Removed(_)), "{report}");

    let (serial, _) = served_serial(&server, Some("portal.test")).await;
    assert_eq!(serial, portal.serial(), "good certificates update");
    let (serial, _) = served_serial(&server, Some("engine.test")).await;
    assert_eq!(
        serial,
        setup.serial("engine"),
        "the bad one keeps serving its previous version"
    );
    let (serial, _) = served_serial(&server, Some("extra.test")).await;
    assert_eq!(serial, extra.serial(), "added certificates serve");
    let (serial, _) = served_serial(&server, Some("x.apps.test")).await;
    assert_eq!(
        serial,
        portal.serial(),
        "a removed certificate no longer serves its names"
    );
}

#[tokio::test]
async fn first_load_fails_if_any_certificate_fails() {
    let mut setup = Setup::new(false);
    let expired = setup
        .pki
        .inter
        .leaf_with(LeafSpec::new(&["engine.test"]).validity(-30, -1));
    setup.config.certificates[1] = spec(setup.dir.path(), &setup.pki, "engine", &expired);
    let err = Store::load(&setup.config, Timestamp::now()).expect_err("first load must fail");
    let msg = err.to_string();
    assert!(msg.contains("engine") && msg.contains("expired"), "{msg}");
    assert!(
        err.report
            .entry("portal")
            .is_some_and(|e| !e.outcome.is_failure())
    );
}
