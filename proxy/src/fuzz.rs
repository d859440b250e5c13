//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): the config file, and a
//! client connection's bytes through the HTTP handling, as a listener serves them once
//! its handshake is done, to an upstream on loopback. Not an API.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ops::metrics::ListenerMetrics;
use crate::serve::forward::ConnectionSlot;
use crate::serve::forward::http::{Conn, HttpListener};
use crate::serve::forward::routes::{RouteTable, Routes};

/// Checks `text` as a config file, as `check` and `run` do first.
pub fn config(text: &str) {
    let _ = Config::parse(Path::new("/fuzz/gatehouse.toml"), text);
}

/// How long a connection may stay quiet before the harness takes the exchange as over.
const QUIET: Duration = Duration::from_millis(50);

/// One HTTP listener, its routes, and a runtime to serve connections on.
pub struct HttpHarness {
    rt: tokio::runtime::Runtime,
    listener: Arc<HttpListener>,
    routes: Routes,
    permits: Arc<Semaphore>,
}

impl HttpHarness {
    /// A listener forwarding to an upstream on 127.0.0.1 that answers every request 200.
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the harness");
        let upstream = rt.block_on(upstream());
        let text = format!(
            "state_dir = \"/nonexistent\"\n[[certificate]]\nname = \"portal\"\nissuer = \"internal\"\nnames = [\"portal.test\"]\n[[listener]]\nname = \"web\"\nbind = \"127.0.0.1:0\"\ncertificates = [\"portal\"]\nupstream = \"http://{upstream}\"\nheader_timeout = 1\nidle_timeout = 1\nsend_timeout = 1\nupstream_timeout = 1\n[[listener.route]]\nserver_name = \"engine.test\"\nupstream = \"http://{upstream}\"\n"
        );
        let config = Config::parse(Path::new("/fuzz/gatehouse.toml"), &text)
            .expect("the harness config checks");
        let l = &config.listeners[0];
        let _guard = rt.enter();
        let table = RouteTable::build(l, &config.upstream_tls, 1, certstore::Timestamp::now())
            .expect("routes");
        let metrics: &'static ListenerMetrics = Box::leak(Box::new(ListenerMetrics::disabled()));
        let listener = Arc::new(HttpListener::new(l, metrics, false));
        Self {
            routes: Arc::new(arc_swap::ArcSwap::from_pointee(table)),
            rt,
            listener,
            permits: Arc::new(Semaphore::new(1)),
        }
    }

    /// Serves `bytes` from a client, reads what is answered until the connection closes or
    /// stays quiet for [`QUIET`] (a kept-alive connection waits for more), and returns it.
    pub fn serve(&self, bytes: &[u8], h2: bool) -> Vec<u8> {
        self.rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let target = self.routes.load().pick(Some("portal.test")).clone();
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return Vec::new();
            };
            let conn = Conn {
                peer: std::net::Ipv4Addr::LOCALHOST.into(),
                sni: Some("portal.test".into()),
                target,
                routes: self.routes.clone(),
                _slot: Arc::new(ConnectionSlot::new(
                    permit,
                    ListenerMetrics::disabled().connection(),
                    crate::serve::workers::Open::uncounted(),
                )),
                client: crate::serve::client_auth::ClientIdentity::NotAsked,
                private: None,
            };
            let listener = self.listener.clone();
            let shutdown = CancellationToken::new();
            let served = tokio::spawn({
                let shutdown = shutdown.clone();
                async move {
                    let stream = tokio::io::BufReader::new(server);
                    listener.serve(stream, h2, conn, shutdown).await;
                }
            });
            let mut answer = Vec::new();
            let exchange = async {
                let _ = client.write_all(bytes).await;
                let mut buf = [0u8; 16 * 1024];
                while let Ok(Ok(n @ 1..)) = tokio::time::timeout(QUIET, client.read(&mut buf)).await
                {
                    answer.extend_from_slice(&buf[..n]);
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), exchange).await;
            shutdown.cancel();
            drop(client);
            let _ = tokio::time::timeout(Duration::from_secs(2), served).await;
            answer
        })
    }
}

impl Default for HttpHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// An upstream on 127.0.0.1 that answers every request `200 ok`, on the harness's runtime.
async fn upstream() -> std::net::SocketAddr {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the harness upstream");
    let addr = socket.local_addr().expect("its address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = socket.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok\n")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_answers_a_request_and_survives_garbage() {
        let harness = HttpHarness::new();
        let answer = harness.serve(b"GET / HTTP/1.1\r\nHost: portal.test\r\n\r\n", false);
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let refused = harness.serve(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false);
        assert!(refused.starts_with(b"HTTP/1.1 400"));
        let _ = harness.serve(b"\x00\xffnot http at all", false);
        let _ = harness.serve(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", true);
        config("[[listener]]\nname = 1\n");
    }
}
