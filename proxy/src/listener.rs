//! One listener's accept loop: a connection permit before `accept`, a bounded handshake,
//! then HTTP or TCP forwarding, each connection on its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Listener, Protocol};
use crate::forward::http::HttpListener;
use crate::forward::tcp;
use crate::metrics::ListenerMetrics;
use crate::routes::Routes;
use crate::tls::{self, ListenerTls};

/// Pause after an accept error (EMFILE and friends) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Everything one listener's connections share.
pub struct ListenerState {
    pub config: Listener,
    pub tls: ListenerTls,
    pub routes: Routes,
    pub http: Option<Arc<HttpListener>>,
    pub metrics: Arc<ListenerMetrics>,
}

/// Accepts until `shutdown`, then drops the socket so new connections are refused.
pub async fn accept_loop(
    socket: TcpListener,
    state: Arc<ListenerState>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(state.config.max_connections));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = socket.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(listener = %state.config.name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            connection(tcp, peer, &state, shutdown).await;
            drop(permit);
        });
    }
    tracing::info!(listener = %state.config.name, "stopped accepting");
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    state: &ListenerState,
    shutdown: CancellationToken,
) {
    let _active = state.metrics.connection();
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + state.config.handshake_timeout;
    let stream = match tls::handshake(tcp, &state.tls, deadline).await {
        Ok(s) => s,
        Err(e) => {
            state.metrics.handshake(e.as_label());
            tracing::debug!(listener = %state.config.name, %peer, error = %e, "handshake failed");
            return;
        }
    };
    state.metrics.handshake("ok");
    let sni = stream.get_ref().1.server_name();
    let target = state.routes.load().pick(sni).clone();
    match (state.config.protocol, &state.http) {
        (Protocol::Http, Some(http)) => {
            let sni: Option<Arc<str>> = sni.map(Arc::from);
            http.serve(stream, peer.ip(), sni.as_deref(), target, shutdown)
                .await
        }
        _ => match tcp::forward(stream, &target, state.config.upstream_connect_timeout).await {
            Ok(_) => {}
            Err(e) => {
                state.metrics.upstream_error(e.as_label());
                tracing::warn!(listener = %state.config.name, %peer, error = %e, "tcp upstream unavailable");
            }
        },
    }
}
