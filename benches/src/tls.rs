//! In-memory TLS 1.3 handshakes: a rustls client against the `ServerConfig` the proxy builds
//! for an HTTP listener (`proxy::serve::tls::server_config`, certificates from a `certstore::Store`),
//! records moved through a buffer with `write_tls` / `read_tls` / `process_new_packets`, as
//! rustls' own benches do. No sockets, no runtime: what is left is the TLS work itself.
//!
//! The client offers only X25519, as the OpenSSL 3.0 clients of `benches/load/compare.sh`
//! (wrk, h2load) do, so that the figures explain the load test's handshakes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use certstore::{Bundle, LoadedCert, SourcedCert, SourcedKey, Store, Timestamp};
use gatehouse_tests::{Leaf, LeafSpec, Pki};
use rcgen::KeyPair;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, ServerConfig};

use crate::{LISTENER, listener_for};

/// The name the client asks for and the leaf covers.
pub const SERVER_NAME: &str = "bench.example.test";

/// Rounds of records a handshake may take before the driver gives up (a full TLS 1.3
/// handshake with tickets takes 3).
const MAX_ROUNDS: usize = 8;

/// The leaf's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

impl KeyKind {
    pub const ALL: [KeyKind; 2] = [KeyKind::EcdsaP256, KeyKind::Rsa2048];

    /// For benchmark ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
        }
    }

    fn generate(self) -> KeyPair {
        match self {
            Self::EcdsaP256 => KeyPair::generate().expect("P-256 key"),
            Self::Rsa2048 => KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key"),
        }
    }
}

/// A test PKI (root → intermediate, rcgen, ECDSA P-256) and one leaf for [`SERVER_NAME`]
/// with a key of the given kind.
pub struct Material {
    pub pki: Pki,
    pub leaf: Leaf,
}

impl Material {
    pub fn new(kind: KeyKind) -> Self {
        let pki = Pki::new();
        let leaf = pki
            .inter
            .leaf_with_key(LeafSpec::new(&[SERVER_NAME]), kind.generate());
        Self { pki, leaf }
    }

    /// Leaf and intermediate, the way the proxy serves them, loaded by certstore.
    pub fn loaded(&self) -> LoadedCert {
        let memory = std::path::PathBuf::from("memory");
        let bundle = Bundle {
            certs: [&self.leaf.cert, &self.pki.inter.cert]
                .into_iter()
                .map(|der| SourcedCert {
                    der: der.clone(),
                    path: memory.clone(),
                })
                .collect(),
            keys: vec![SourcedKey {
                der: PrivateKeyDer::from_pem_slice(self.leaf.key_pem.as_bytes())
                    .expect("leaf key PEM"),
                path: memory.clone(),
            }],
        };
        LoadedCert::from_bundle(
            "leaf",
            &bundle,
            None,
            Vec::new(),
            Timestamp::now(),
            &Default::default(),
        )
        .expect("load the bench leaf")
    }

    /// Gatehouse's server configuration for an HTTP listener serving this leaf.
    pub fn server_config(&self, session_resumption: bool) -> Arc<ServerConfig> {
        self.server_config_for(self.loaded(), session_resumption)
    }

    /// [`Material::server_config`] stapling an OCSP response of `staple_len` bytes (the
    /// server sends it as it is; the size of a typical response is about 500 bytes, with
    /// a delegated responder's certificate about 1,500).
    pub fn server_config_stapled(&self, staple_len: usize) -> Arc<ServerConfig> {
        let mut loaded = self.loaded();
        let mut key = (*loaded.certified_key).clone();
        key.ocsp = Some(vec![0x30; staple_len]);
        loaded.certified_key = Arc::new(key);
        self.server_config_for(loaded, false)
    }

    fn server_config_for(&self, loaded: LoadedCert, session_resumption: bool) -> Arc<ServerConfig> {
        let store = Store::from_loaded(vec![loaded], &[listener_for(["leaf"])]);
        let resolver = store.resolver(LISTENER).expect("bench listener");
        let options = proxy::serve::tls::TlsOptions {
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            session_resumption,
            ..Default::default()
        };
        proxy::serve::tls::server_config(resolver, &options).expect("server config")
    }

    /// [`Material::server_config`] with mutual TLS required: clients' certificates verified
    /// against the test root (files in `dir`, as the proxy reads them). No resumption.
    pub fn server_config_mutual_tls(&self, dir: &std::path::Path) -> Arc<ServerConfig> {
        let store = Store::from_loaded(vec![self.loaded()], &[listener_for(["leaf"])]);
        let resolver = store.resolver(LISTENER).expect("bench listener");
        let client_auth = proxy::serve::client_auth::ClientAuth {
            required: true,
            ca_file: gatehouse_tests::write(dir, "client-ca.pem", &self.pki.root.cert_pem),
            crl_file: None,
        };
        let options = proxy::serve::tls::TlsOptions {
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            session_resumption: false,
            client_auth: Some(
                proxy::serve::client_auth::ClientVerifier::load(&client_auth)
                    .expect("client verifier"),
            ),
            ..Default::default()
        };
        proxy::serve::tls::server_config(resolver, &options).expect("server config")
    }

    /// [`Material::client_config`] without resumption, presenting a client certificate
    /// (ECDSA P-256) issued by the test intermediate.
    pub fn client_config_with_certificate(&self) -> Arc<ClientConfig> {
        let names = ["client.bench.test"];
        let mut spec = LeafSpec::new(&names);
        spec.client_auth = true;
        let client = self.pki.inter.leaf_with(spec);
        let chain = vec![client.cert.clone(), self.pki.inter.cert.clone()];
        let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes()).expect("client key");
        let mut config = (*self.client_config(false)).clone();
        let with_cert = ClientConfig::builder_with_provider(config.crypto_provider().clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(self.roots())
            .with_client_auth_cert(chain, key)
            .expect("client certificate");
        config.client_auth_cert_resolver = with_cert.client_auth_cert_resolver.clone();
        Arc::new(config)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.pki.root.cert.to_vec()))
            .expect("trust the test root");
        roots
    }

    /// A rustls client trusting the test root, TLS 1.3 and X25519 only, with or without a
    /// session cache.
    pub fn client_config(&self, resumption: bool) -> Arc<ClientConfig> {
        let base = rustls::crypto::aws_lc_rs::default_provider();
        let provider = CryptoProvider {
            kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
            ..base
        };
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.resumption = if resumption {
            Resumption::in_memory_sessions(64)
        } else {
            Resumption::disabled()
        };
        Arc::new(config)
    }
}

/// One client and one server configuration, and a buffer the records travel through.
pub struct Pair {
    pub client: Arc<ClientConfig>,
    pub server: Arc<ServerConfig>,
    name: ServerName<'static>,
    wire: Vec<u8>,
}

/// What one handshake took.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub kind: HandshakeKind,
    /// Time spent in the server's calls only (`ServerConnection::new`, `read_tls`,
    /// `process_new_packets`, `write_tls`): the proxy's share of the handshake.
    pub server_time: Duration,
}

impl Pair {
    pub fn new(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Self {
        Self {
            client,
            server,
            name: ServerName::try_from(SERVER_NAME).expect("server name"),
            wire: Vec::with_capacity(16 * 1024),
        }
    }

    /// A full new connection: handshake until both sides are done and nothing is left in
    /// flight (so the client has stored the session tickets the server sent, if any).
    pub fn handshake(&mut self) -> Outcome {
        let mut client =
            ClientConnection::new(self.client.clone(), self.name.clone()).expect("client");
        let start = Instant::now();
        let mut server = rustls::ServerConnection::new(self.server.clone()).expect("server");
        let mut server_time = start.elapsed();
        for _ in 0..MAX_ROUNDS {
            let to_server = move_records(&mut *client, &mut self.wire);
            let start = Instant::now();
            deliver(&mut *server, &self.wire);
            server.process_new_packets().expect("server handshake");
            let to_client = move_records(&mut *server, &mut self.wire);
            server_time += start.elapsed();
            deliver(&mut *client, &self.wire);
            client.process_new_packets().expect("client handshake");
            if to_server == 0 && to_client == 0 && !client.is_handshaking() {
                assert!(
                    !server.is_handshaking(),
                    "the server finishes with the client"
                );
                return Outcome {
                    kind: client.handshake_kind().expect("handshake kind"),
                    server_time,
                };
            }
        }
        panic!("handshake did not finish in {MAX_ROUNDS} rounds");
    }
}

/// Moves everything `from` has to send into `wire` (emptied first); returns the byte count.
fn move_records<D>(from: &mut rustls::ConnectionCommon<D>, wire: &mut Vec<u8>) -> usize {
    wire.clear();
    while from.wants_write() {
        from.write_tls(wire).expect("write to a Vec");
    }
    wire.len()
}

/// Feeds all of `wire` to `to`.
fn deliver<D>(to: &mut rustls::ConnectionCommon<D>, mut wire: &[u8]) {
    while !wire.is_empty() {
        let n = to.read_tls(&mut wire).expect("read from a slice");
        assert!(n > 0, "rustls took no bytes: its buffer is full");
    }
}
