//! Helpers shared by the integration tests and the benches: test PKIs (rcgen and the
//! `openssl` CLI), temp files, a TLS echo server on `127.0.0.1:0` and a TLS client that
//! reports the chain it was served.

pub mod faults;
mod pki;
pub mod upstream;

pub use pki::{Ca, Leaf, LeafSpec, Pki, serial_of};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bound on every network step a test takes.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The files `tests/fixtures/make-fixtures.sh` makes with the `openssl` CLI, made once per
/// test process into `$TMPDIR/gatehouse-fixtures-<pid>`.
///
/// A static is never dropped, so the directory outlives the process; each process first
/// removes the directories of test processes that are gone.
pub fn openssl_fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        remove_stale_fixtures();
        let dir = std::env::temp_dir().join(format!("{FIXTURES_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir for fixtures");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-fixtures.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("run make-fixtures.sh (is the openssl CLI installed?)");
        assert!(
            out.status.success(),
            "make-fixtures.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

const FIXTURES_PREFIX: &str = "gatehouse-fixtures-";

/// Removes `gatehouse-fixtures-<pid>` directories whose process no longer runs.
fn remove_stale_fixtures() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FIXTURES_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// One of the files in [`openssl_fixtures`].
pub fn fixture(name: &str) -> PathBuf {
    openssl_fixtures().join(name)
}

/// A fresh temp dir, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("gatehouse-test-")
        .tempdir()
        .expect("temp dir")
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// A TLS echo server on `127.0.0.1:0` that terminates TLS exactly as the proxy does.
/// Aborted when dropped.
pub struct EchoServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    pub async fn start(tls: proxy::serve::tls::ListenerTls) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
                    let Ok(mut stream) = proxy::serve::tls::handshake(tcp, &tls, deadline).await
                    else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                                let _ = stream.flush().await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

/// A rustls client config that records nothing and trusts anything (see [`verify_chain`]).
pub fn inspecting_client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = certstore::provider().clone();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        // Tests check the served chain themselves with `verify_chain`, which lets them ask
        // for names the certificate does not cover.
        .with_custom_certificate_verifier(Arc::new(proxy::serve::upstream_tls::InsecureVerifier(
            provider,
        )))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Connects with TLS to `addr`, sending `sni` (or no SNI at all). Returns the stream and
/// the chain the server presented.
pub async fn connect(
    addr: SocketAddr,
    sni: Option<&str>,
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<TcpStream>,
    Vec<CertificateDer<'static>>,
)> {
    connect_with(inspecting_client_config(&[]), addr, sni).await
}

/// [`connect`] with a given client configuration (to share its session cache, say).
pub async fn connect_with(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    sni: Option<&str>,
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<TcpStream>,
    Vec<CertificateDer<'static>>,
)> {
    let config = if config.enable_sni != sni.is_some() {
        let mut c = (*config).clone();
        c.enable_sni = sni.is_some();
        Arc::new(c)
    } else {
        config
    };
    let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tcp = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await??;
    let stream = tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await??;
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    Ok((stream, chain))
}

/// Verifies a served chain as a browser would: to `root`, for `name`.
pub fn verify_chain(
    chain: &[CertificateDer<'static>],
    root: &CertificateDer<'static>,
    name: &str,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone())?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        certstore::provider().clone(),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    let name =
        ServerName::try_from(name.to_owned()).map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .map(|_| ())
}

/// Writes `msg` and reads the echo back, bounded in time.
pub async fn echo_roundtrip<S>(stream: &mut S, msg: &[u8]) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(STEP_TIMEOUT, async {
        stream.write_all(msg).await?;
        stream.flush().await?;
        let mut buf = vec![0u8; msg.len()];
        stream.read_exact(&mut buf).await?;
        Ok(buf)
    })
    .await?
}

/// Builds the TLS side of a listener exactly as the proxy does.
pub fn listener_tls(
    store: &certstore::Store,
    listener: &str,
    strict_sni: bool,
) -> proxy::serve::tls::ListenerTls {
    let resolver = store
        .resolver(listener)
        .expect("listener known to the store");
    let config = proxy::serve::tls::server_config(
        resolver.clone(),
        &proxy::serve::tls::TlsOptions::default(),
    )
    .expect("server config");
    proxy::serve::tls::ListenerTls {
        config,
        resolver,
        strict_sni,
    }
}
