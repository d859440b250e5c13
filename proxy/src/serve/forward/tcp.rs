//! TCP mode: after the handshake, bytes both ways to a `tcp://` upstream.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::serve::forward::routes::Target;
use crate::serve::proxy_protocol;

/// Why a TCP stream could not be forwarded. Doubles as the upstream error metric label.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcpForwardError {
    #[error("upstream {upstream} did not accept the connection within {timeout:?}")]
    ConnectTimeout { upstream: String, timeout: Duration },
    #[error("cannot connect to upstream {upstream}: {source}")]
    Connect {
        upstream: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS to upstream {upstream} failed: {reason}")]
    Tls {
        upstream: String,
        verify: bool,
        /// What went wrong, as a sentence that says what to do.
        reason: String,
    },
}

impl TcpForwardError {
    /// The `kind` label of `gatehouse_upstream_errors_total`.
    pub fn as_label(&self) -> &'static str {
        match self {
            Self::ConnectTimeout { .. } => "timeout",
            Self::Connect { .. } => "connect",
            Self::Tls { verify: true, .. } => "tls_verify",
            Self::Tls { verify: false, .. } => "protocol",
        }
    }
}

/// Copies bytes between the client and the upstream until both sides are done. When one
/// side finishes sending, the other is told (half-close) and may keep sending. With
/// `upstream_proxy_protocol`, the upstream first gets a header naming `addresses` (the
/// client, and where it connected).
pub async fn forward<S>(
    mut client: S,
    target: &Target,
    connect_timeout: Duration,
    addresses: (SocketAddr, SocketAddr),
) -> Result<(u64, u64), TcpForwardError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let upstream = &target.upstream;
    let mut up = match timeout(connect_timeout, TcpStream::connect(&upstream.connect_to)).await {
        Err(_) => {
            return Err(TcpForwardError::ConnectTimeout {
                upstream: upstream.original.clone(),
                timeout: connect_timeout,
            });
        }
        Ok(Err(source)) => {
            return Err(TcpForwardError::Connect {
                upstream: upstream.original.clone(),
                source,
            });
        }
        Ok(Ok(s)) => s,
    };
    let _ = up.set_nodelay(true);
    if let Some(version) = upstream.options.proxy_protocol {
        let header = proxy_protocol::header(version, addresses.0, addresses.1);
        up.write_all(&header)
            .await
            .map_err(|source| TcpForwardError::Connect {
                upstream: upstream.original.clone(),
                source,
            })?;
    }
    match &target.tls {
        None => Ok(pipe(&mut client, &mut up).await),
        Some(tls) => {
            let handshake = tls.connector.connect(tls.server_name.clone(), up);
            let mut up = match timeout(connect_timeout, handshake).await {
                Err(_) => {
                    return Err(TcpForwardError::ConnectTimeout {
                        upstream: upstream.original.clone(),
                        timeout: connect_timeout,
                    });
                }
                Ok(Err(source)) => {
                    let tls = crate::serve::upstream_tls::rustls_error(&source);
                    return Err(TcpForwardError::Tls {
                        upstream: upstream.original.clone(),
                        verify: tls.is_some_and(crate::serve::upstream_tls::is_verify_failure),
                        reason: tls.map_or_else(
                            || source.to_string(),
                            crate::serve::upstream_tls::explain,
                        ),
                    });
                }
                Ok(Ok(s)) => s,
            };
            Ok(pipe(&mut client, &mut up).await)
        }
    }
}

async fn pipe<A, B>(a: &mut A, b: &mut B) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    // An error mid-stream (reset by a peer) ends the stream; there is no one to tell.
    tokio::io::copy_bidirectional(a, b).await.unwrap_or((0, 0))
}
