//! The TLS side of a listener: its rustls configuration and the handshake.
//!
//! With `strict_sni`, the handshake reads the ClientHello first (`LazyConfigAcceptor`) so
//! that an unknown name gets the `unrecognized_name` alert — rustls only knows how to send
//! `access_denied` when no certificate resolves. Other listeners hand the connection to
//! rustls directly.

use std::io;
use std::sync::{Arc, OnceLock};

use certstore::{Selection, SniResolver};
use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor, ServerConfig};
use rustls::{AlertDescription, CipherSuite, ContentType, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::client_auth::ClientVerifier;
use super::tickets::FileTicketer;

/// What a listener needs to terminate TLS. Built at startup; certificates change underneath
/// through the resolver's snapshot, never by rebuilding this.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub config: Arc<ServerConfig>,
    pub resolver: Arc<SniResolver>,
    /// Refuse unknown names (and clients without SNI) with `unrecognized_name`.
    pub strict_sni: bool,
}

/// Options for [`server_config`].
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Offer only TLS 1.3.
    pub tls13_only: bool,
    /// ALPN protocols in preference order, e.g. `h2`, `http/1.1`.
    pub alpn: Vec<Vec<u8>>,
    /// Session resumption by tickets (TLS 1.2 and 1.3) and session IDs.
    pub session_resumption: bool,
    /// Ticket keys from `session_ticket_key_file`; rustls' rotating keys when `None`.
    pub tickets: Option<Arc<FileTicketer>>,
    /// Mutual TLS: the verifier of clients' certificates.
    pub client_auth: Option<Arc<ClientVerifier>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            tls13_only: false,
            alpn: Vec::new(),
            session_resumption: true,
            tickets: None,
            client_auth: None,
        }
    }
}

/// Errors building a listener's TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(transparent)]
    Tickets(#[from] super::tickets::TicketKeyError),
    #[error(transparent)]
    ClientAuth(#[from] super::client_auth::ClientAuthError),
}

/// The aws-lc-rs provider with AES-128-GCM preferred over AES-256-GCM, then ChaCha20.
///
/// OpenSSL-based clients list AES-256-GCM-SHA384 first. Its SHA-384 key schedule and
/// transcript hash run without the SHA extensions CPUs have for SHA-256: more CPU per full
/// handshake on the proxy, for no security a terminator in front of an appliance needs
/// (AES-128 is what browsers prefer too).
fn server_provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let mut provider = (**certstore::provider()).clone();
        provider
            .cipher_suites
            .sort_by_key(|s| suite_rank(s.suite()));
        Arc::new(provider)
    })
}

/// Lower is preferred; a stable sort keeps the provider's order otherwise.
fn suite_rank(suite: CipherSuite) -> u8 {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        CipherSuite::TLS13_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    }
}

/// TLS 1.2 and 1.3 (or 1.3 only) with the aws-lc-rs provider, certificates from `resolver`.
pub fn server_config(
    resolver: Arc<SniResolver>,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let versions: &[&rustls::SupportedProtocolVersion] = if options.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(server_provider().clone())
        .with_protocol_versions(versions)?;
    let builder = match &options.client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    // Our order, not the client's: see `server_provider`.
    config.ignore_client_order = true;
    config.alpn_protocols = options.alpn.clone();
    if options.session_resumption {
        config.ticketer = match &options.tickets {
            Some(keys) => keys.clone(),
            None => rustls::crypto::aws_lc_rs::Ticketer::new()?,
        };
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

/// Why a handshake did not complete. Doubles as the `result` metric label.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("handshake timed out")]
    Timeout,
    /// The client closed the connection before the handshake was done: a TCP health
    /// check or a port scan, usually.
    #[error("client closed the connection during the handshake")]
    Closed,
    /// Mutual TLS: the client sent no certificate where one is required, or one that does
    /// not verify (another CA, expired, revoked).
    #[error("client certificate refused: {0}")]
    ClientCertificate(rustls::Error),
    #[error("refused server name {0:?}: no certificate covers it and strict_sni is on")]
    UnrecognizedName(Option<String>),
    #[error("no certificate configured for this listener")]
    NoCertificate,
    #[error("TLS handshake failed: {0}")]
    Protocol(#[source] io::Error),
}

impl HandshakeError {
    /// An I/O error of the handshake: the client going away, or a protocol failure.
    fn from_io(e: io::Error) -> Self {
        use rustls::Error::{InvalidCertificate, NoCertificatesPresented};
        let refused = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(refused @ (InvalidCertificate(_) | NoCertificatesPresented)) = refused {
            return Self::ClientCertificate(refused.clone());
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => Self::Closed,
            _ => Self::Protocol(e),
        }
    }

    pub fn as_label(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::ClientCertificate(_) => "client_certificate",
            Self::UnrecognizedName(_) => "unrecognized_name",
            Self::NoCertificate => "no_certificate",
            Self::Protocol(_) => "protocol_error",
        }
    }
}

/// A fatal `unrecognized_name` alert as one TLS record: rustls has no API to send it.
fn unrecognized_name_alert() -> [u8; 7] {
    let [v_hi, v_lo] = u16::from(ProtocolVersion::TLSv1_2).to_be_bytes();
    const FATAL: u8 = 2;
    [
        u8::from(ContentType::Alert),
        v_hi,
        v_lo,
        0,
        2,
        FATAL,
        u8::from(AlertDescription::UnrecognisedName),
    ]
}

/// Runs the server handshake on `io`, all of it bounded by `deadline`.
pub async fn handshake<IO>(
    io: IO,
    tls: &ListenerTls,
    deadline: Instant,
) -> Result<TlsStream<IO>, HandshakeError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    if !tls.strict_sni {
        // Nothing to decide before rustls does: skip reading the ClientHello twice.
        let accept = tokio_rustls::TlsAcceptor::from(tls.config.clone()).accept(io);
        return match timeout_at(deadline, accept).await {
            Err(_) => Err(HandshakeError::Timeout),
            // A listener without any certificate (all failed to load) refuses everyone.
            Ok(Err(_)) if tls.resolver.selection(None) == Selection::NoCertificate => {
                Err(HandshakeError::NoCertificate)
            }
            Ok(Err(e)) => Err(HandshakeError::from_io(e)),
            Ok(Ok(stream)) => Ok(stream),
        };
    }
    let acceptor = LazyConfigAcceptor::new(Acceptor::default(), io);
    let start = match timeout_at(deadline, acceptor).await {
        Err(_) => return Err(HandshakeError::Timeout),
        Ok(Err(e)) => return Err(HandshakeError::from_io(e)),
        Ok(Ok(start)) => start,
    };
    let hello = start.client_hello();
    let selection = tls.resolver.selection(hello.server_name());
    match selection {
        Selection::Refused => {
            let name = hello.server_name().map(str::to_owned);
            let mut io = start.io;
            // Best effort: the peer may already be gone.
            let _ = timeout_at(deadline, io.write_all(&unrecognized_name_alert())).await;
            return Err(HandshakeError::UnrecognizedName(name));
        }
        Selection::NoCertificate => return Err(HandshakeError::NoCertificate),
        _ => {}
    }
    match timeout_at(deadline, start.into_stream(tls.config.clone())).await {
        Err(_) => Err(HandshakeError::Timeout),
        Ok(Err(e)) => Err(HandshakeError::from_io(e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}
