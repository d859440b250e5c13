//! 101 upgrades (WebSocket): once both sides have switched, the client's connection and
//! the upstream's are spliced, bytes both ways, until either ends.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Splices the upgraded client connection (which the 101 was sent on) to the upstream's
/// once it has switched too.
pub(super) async fn splice<C>(mut client: C, upstream: OnUpgrade, listener: &str)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    match upstream.await {
        Ok(u) => {
            let mut u = TokioIo::new(u);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut u).await;
        }
        Err(e) => tracing::debug!(listener = %listener, error = %e, "upgrade failed"),
    }
}
