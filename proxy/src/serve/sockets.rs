//! The listening sockets: bound by Gatehouse (backlog, `SO_REUSEADDR`, `TCP_NODELAY` once
//! for every connection), or handed down by systemd (socket activation).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel completes and queues for `accept` per listening socket: nginx's
/// 511, rounded up. The default of `TcpListener::bind` (128) overflows when hundreds of
/// clients connect at once, and a dropped SYN costs its client a one-second retry. Linux
/// caps it at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 1024;

/// Listening sockets handed down by systemd (socket activation, `LISTEN_FDS`): a listener
/// whose `bind` is one of their addresses accepts on it instead of binding, so the kernel
/// queues connections while Gatehouse restarts.
#[derive(Debug, Default)]
pub struct Inherited(Vec<(SocketAddr, std::net::TcpListener)>);

impl Inherited {
    /// Takes the TCP listening sockets of `LISTEN_FDS` (checked against `LISTEN_PID`).
    /// Call it before any thread starts: it clears those variables, as the protocol says.
    pub fn from_env() -> Self {
        let mut fds = listenfd::ListenFd::from_env();
        let mut sockets = Vec::new();
        for i in 0..fds.len() {
            match fds.take_tcp_listener(i) {
                Ok(Some(socket)) => match socket.local_addr() {
                    Ok(addr) => sockets.push((addr, socket)),
                    Err(e) => tracing::warn!("LISTEN_FDS socket {i}: {e}; left unused"),
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("LISTEN_FDS socket {i} is not a TCP listener ({e}); left unused")
                }
            }
        }
        Self(sockets)
    }

    /// The inherited socket bound to `addr`, if there is one.
    pub fn take(&mut self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        let i = self.0.iter().position(|(a, _)| *a == addr)?;
        Some(self.0.swap_remove(i).1)
    }

    /// Addresses no listener took: the socket unit and the config disagree.
    pub fn unused(&self) -> Vec<SocketAddr> {
        self.0.iter().map(|(a, _)| *a).collect()
    }
}

/// A listening socket on `addr`, with `SO_REUSEADDR` (a restart rebinds at once) and
/// `TCP_NODELAY`, which sockets accepted from it inherit on Linux: no `setsockopt` per
/// connection there.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::TcpStream;

    /// A listener from `listen`, a client connected to it, and the accepted side.
    async fn one_connection() -> (TcpListener, TcpStream, TcpStream) {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        (listener, client, accepted)
    }

    /// On Linux `connection` relies on this instead of setting it per connection.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_sockets_have_nodelay_without_a_call_per_connection() {
        let (_listener, _client, accepted) = one_connection().await;
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY is inherited from the listening socket"
        );
    }

    #[tokio::test]
    async fn hundreds_of_connections_queue_while_the_workers_are_busy() {
        // Nothing accepts: the kernel queues up to the backlog (`TcpListener::bind`'s 128
        // would leave the rest waiting for a SYN retry).
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // The kernel's cap, where lower than the test's 400 (kernels before 5.4: 128).
        let cap = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(400);
        let mut queued = Vec::new();
        for i in 0..cap.min(400) {
            let connect =
                tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr));
            match connect.await {
                Ok(Ok(c)) => queued.push(c),
                other => panic!("connection {i} not queued: {other:?}"),
            }
        }
        drop(listener);
    }

    #[tokio::test]
    async fn a_listener_rebinds_its_port_while_the_last_connections_close() {
        let (listener, client, accepted) = one_connection().await;
        let addr = listener.local_addr().unwrap();
        // The server side closes first: its end lingers in TIME_WAIT.
        drop(accepted);
        drop(client);
        drop(listener);
        let again = listen(addr).expect("SO_REUSEADDR: a restart binds the same port at once");
        assert_eq!(again.local_addr().unwrap(), addr);
    }
}
