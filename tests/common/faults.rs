//! Upstreams that misbehave on purpose, for the tests of what a failing upstream or a
//! hostile client costs: each reports what it saw to a [`Watch`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::upstream::{Watch, spawn_server};

/// A TCP upstream that writes zeros as fast as it is let, reading nothing, until the
/// connection fails; `closed` counts the connections that ended.
pub fn tcp_flood() -> (SocketAddr, Arc<Watch>) {
    let watch = Arc::new(Watch::default());
    let w = watch.clone();
    let addr = spawn_server(move |mut tcp| {
        let w = w.clone();
        async move {
            w.update(|s| s.connections += 1);
            let chunk = vec![0u8; 64 * 1024];
            while tcp.write_all(&chunk).await.is_ok() {}
            w.update(|s| s.closed += 1);
        }
    });
    (addr, watch)
}

/// How [`breaks_mid_body`] breaks its response off.
#[derive(Clone, Copy, Debug)]
pub enum Break {
    /// Resets the connection.
    Reset,
    /// Sends nothing more for 30 s, then closes.
    Stall,
}

/// An HTTP/1.1 upstream that reads a request head, answers `200` with a
/// `Content-Length` of 1 MiB, sends 1 KiB of it and breaks off as `how` says.
pub fn breaks_mid_body(how: Break) -> (SocketAddr, Arc<Watch>) {
    let watch = Arc::new(Watch::default());
    let w = watch.clone();
    let addr = spawn_server(move |mut tcp| {
        let w = w.clone();
        async move {
            w.update(|s| s.connections += 1);
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|four| four == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            w.update(|s| s.requests += 1);
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
            let _ = tcp.write_all(answer).await;
            let _ = tcp.write_all(&[b'x'; 1024]).await;
            match how {
                // SO_LINGER 0: the close is a reset, not an orderly end.
                Break::Reset => {
                    let _ = tcp.set_zero_linger();
                }
                Break::Stall => tokio::time::sleep(std::time::Duration::from_secs(30)).await,
            }
            drop(tcp);
            w.update(|s| s.closed += 1);
        }
    });
    (addr, watch)
}

/// A TCP upstream that echoes every byte back as it arrives.
pub fn tcp_echo() -> SocketAddr {
    spawn_server(|mut tcp| async move {
        let (mut r, mut w) = tcp.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
}

/// An upstream that answers every request head with bytes that are not HTTP, then closes.
pub fn answers_garbage() -> SocketAddr {
    spawn_server(|mut tcp| async move {
        let mut buf = [0u8; 4096];
        if matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {
            let _ = tcp.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
        }
    })
}

/// An HTTP/1.1 upstream on a fixed port that can be stopped (its listener and every
/// connection closed, as a process that exits) and started again on the same port.
pub struct Restartable {
    addr: SocketAddr,
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Restartable {
    pub fn new() -> Arc<Self> {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        let upstream = Arc::new(Self {
            addr,
            tasks: std::sync::Mutex::new(tokio::task::JoinSet::new()),
        });
        upstream.start();
        upstream
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Listens again (the port is bound with SO_REUSEADDR, as servers do).
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        let listener = crate::upstream::rt().block_on(async move {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("reuseaddr");
            socket.bind(me.addr).expect("bind the same port again");
            socket.listen(128).expect("listen")
        });
        let me = self.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.spawn_on(
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"up\n")),
                        ))
                    });
                    let serving = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                    me.tasks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .spawn(async move {
                            let _ = serving.await;
                        });
                }
            },
            crate::upstream::rt().handle(),
        );
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        // Taken out of the lock first: the accept task takes it to add a connection.
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        tasks.abort_all();
        crate::upstream::rt().block_on(async { while tasks.join_next().await.is_some() {} });
        // Connections accepted while stopping landed in the new set: close them too.
        let late = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        drop(late);
    }
}
