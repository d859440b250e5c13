//! 101 upgrades (WebSocket): once both sides have switched, the client's connection and
//! the upstream's are spliced, bytes both ways, until either ends.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::ConnectionSlot;

/// Splices the upgraded client and upstream connections. Holds the client connection's
/// `slot` (its `max_connections` permit and its place in `connections_active`) until the
/// splice ends: an upgraded stream outlives the HTTP exchange that started it.
pub(super) async fn splice(
    client: OnUpgrade,
    upstream: OnUpgrade,
    slot: Arc<ConnectionSlot>,
    listener: Arc<str>,
) {
    let _slot = slot;
    match tokio::try_join!(client, upstream) {
        Ok((c, u)) => {
            let mut c = TokioIo::new(c);
            let mut u = TokioIo::new(u);
            let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
        }
        Err(e) => tracing::debug!(listener = %listener, error = %e, "upgrade failed"),
    }
}
