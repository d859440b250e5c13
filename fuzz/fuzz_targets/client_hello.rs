//! Any bytes as the first flight of a client, into Gatehouse's TLS server configuration
//! (its SNI resolver, ALPN, versions and suites): the ClientHello path.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rustls::ServerConfig;

/// A listener serving one certificate for portal.test, as `run` builds it.
fn config() -> Arc<ServerConfig> {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["portal.test".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let memory = std::path::PathBuf::from("memory");
    let bundle = certstore::Bundle {
        certs: vec![certstore::SourcedCert {
            der: cert.der().clone(),
            path: memory.clone(),
        }],
        keys: vec![certstore::SourcedKey {
            der: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            path: memory,
        }],
    };
    let loaded = certstore::LoadedCert::from_bundle(
        "portal",
        &bundle,
        None,
        Vec::new(),
        certstore::Timestamp::now(),
        &Default::default(),
    )
    .expect("load");
    let listener = certstore::ListenerSpec {
        name: "web".into(),
        certificates: vec!["portal".into()],
        strict_sni: false,
    };
    let store = certstore::Store::from_loaded(vec![loaded], &[listener]);
    let resolver = store.resolver("web").expect("resolver");
    let options = proxy::serve::tls::TlsOptions {
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        ..Default::default()
    };
    proxy::serve::tls::server_config(resolver, &options).expect("server config")
}

fuzz_target!(|data: &[u8]| {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(config).clone();
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut input = data;
    while !input.is_empty() {
        match conn.read_tls(&mut input) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    break;
                }
            }
        }
    }
    let mut out = Vec::new();
    let _ = conn.write_tls(&mut out);
});
