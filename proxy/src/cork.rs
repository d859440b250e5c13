//! Sending a connection's last response in one piece with the connection's close.
//!
//! An HTTP/1.x connection whose client asked for `Connection: close` (or spoke HTTP/1.0
//! without `keep-alive`) ends with its response: hyper writes the response, TLS writes its
//! close_notify, and the socket is shut down. Sent as they come, with `TCP_NODELAY`, those
//! are three TCP segments, each a trip through both ends' TCP stacks and a wake-up of the
//! client; a client that closes on reading the response answers the close_notify behind it
//! with a reset. With `TCP_CORK` set before the response's first byte, the kernel holds
//! back partial segments, and the shutdown's FIN pushes out what it held: the response,
//! the close_notify and the FIN leave together.
//!
//! Only responses of a known length are held (the forwarder decides, see
//! [`LastResponse::mark`]): a streamed one (chunked: server-sent events, long polls) must
//! reach the client piece by piece. Full segments are never held, and Linux sends what a
//! cork holds after 200 ms at the latest.

use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Whether the response being written is the connection's last, of a known length: set by
/// the HTTP forwarder before it hands the response to hyper, read by [`CorkLast`] at each
/// write.
#[derive(Debug, Default)]
pub struct LastResponse(AtomicBool);

impl LastResponse {
    /// The response about to be written ends the connection and has a known length: its
    /// bytes may wait in the kernel for the close. Must only be called when the connection
    /// is certain to be shut down after this response: a cork held on a connection that
    /// stays open delays the next response's last segment by 200 ms.
    pub fn mark(&self) {
        // The same task writes the response right after: nothing to order against.
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl AsRef<LastResponse> for LastResponse {
    fn as_ref(&self) -> &LastResponse {
        self
    }
}

/// A client socket that corks itself at the first write after its connection's
/// [`LastResponse`] was marked; see the module doc. Wrap the socket itself, below any TLS,
/// so that the TLS close_notify is held too. Reads pass straight through.
#[derive(Debug)]
pub struct CorkLast<T: AsFd, S> {
    inner: T,
    last: Arc<S>,
    corked: bool,
    shut_down: bool,
}

impl<T: AsFd, S> CorkLast<T, S> {
    pub fn new(inner: T, last: Arc<S>) -> Self {
        Self {
            inner,
            last,
            corked: false,
            shut_down: false,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsFd, S: AsRef<LastResponse>> CorkLast<T, S> {
    /// Corks the socket, once, if the response being written is the last.
    fn cork_if_last(&mut self) {
        if !self.corked && (*self.last).as_ref().is_marked() {
            self.corked = true;
            // Best effort: without the option the same bytes leave in more segments.
            let _ = set_cork(&self.inner, true);
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_cork(socket: &impl AsFd, on: bool) -> io::Result<()> {
    socket2::SockRef::from(socket).set_tcp_cork(on)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_cork(_socket: &impl AsFd, _on: bool) -> io::Result<()> {
    Ok(())
}

impl<T: AsyncRead + AsFd + Unpin, S> AsyncRead for CorkLast<T, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T, S> AsyncWrite for CorkLast<T, S>
where
    T: AsyncWrite + AsFd + Unpin,
    S: AsRef<LastResponse>,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.cork_if_last();
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.cork_if_last();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// The FIN goes out with whatever the cork held (Linux pushes a corked queue on
    /// shutdown).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_shutdown(cx);
        if done.is_ready() {
            this.shut_down = true;
        }
        done
    }
}

impl<T: AsFd, S> Drop for CorkLast<T, S> {
    /// A connection dropped without a shutdown (an error, a drain cut short) sends what the
    /// cork held before its close: a close with unread input would reset the connection and
    /// discard it.
    fn drop(&mut self) {
        if self.corked && !self.shut_down {
            let _ = set_cork(&self.inner, false);
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair on loopback, the server side wrapped, with `TCP_NODELAY` as the
    /// listener gives its sockets.
    async fn pair() -> (
        CorkLast<TcpStream, LastResponse>,
        Arc<LastResponse>,
        TcpStream,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        let last = Arc::new(LastResponse::default());
        (CorkLast::new(server, last.clone()), last, client)
    }

    fn corked(s: &CorkLast<TcpStream, LastResponse>) -> bool {
        socket2::SockRef::from(s.get_ref()).tcp_cork().unwrap()
    }

    /// Waits (bounded) for something to read on `client`; `None` if nothing came.
    async fn read_within(client: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0; 64];
        match tokio::time::timeout(wait, client.read(&mut buf)).await {
            Ok(Ok(n)) => Some(buf[..n].to_vec()),
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn writes_pass_at_once_until_the_last_response_is_marked() {
        let (mut server, _last, mut client) = pair().await;
        server.write_all(b"kept alive").await.unwrap();
        assert!(!corked(&server), "an unmarked connection is never corked");
        assert_eq!(
            read_within(&mut client, Duration::from_secs(5))
                .await
                .as_deref(),
            Some(&b"kept alive"[..]),
            "a response on a connection that stays open leaves at once"
        );
    }

    #[tokio::test]
    async fn the_last_response_waits_for_the_shutdown_and_leaves_with_the_fin() {
        let (mut server, last, mut client) = pair().await;
        last.mark();
        server.write_all(b"last response").await.unwrap();
        server.write_all(b"+close_notify").await.unwrap();
        assert!(
            corked(&server),
            "the first write after the mark corks the socket"
        );
        assert_eq!(
            read_within(&mut client, Duration::from_millis(50)).await,
            None,
            "a partial segment of the last response waits for the close"
        );
        server.shutdown().await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all))
            .await
            .expect("the shutdown pushes the held bytes and the FIN at once")
            .unwrap();
        assert_eq!(all, b"last response+close_notify");
    }

    #[tokio::test]
    async fn a_corked_socket_dropped_without_shutdown_still_sends_what_it_held() {
        let (mut server, last, mut client) = pair().await;
        // Input the server never reads: its close resets the connection, and discards what
        // is still queued to send.
        client.write_all(b"pipelined").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.get_ref().readable())
            .await
            .unwrap()
            .unwrap();
        last.mark();
        server.write_all(b"held").await.unwrap();
        drop(server);
        let mut got = Vec::new();
        let mut buf = [0; 64];
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(
            got, b"held",
            "the drop sends what the cork held before the reset"
        );
    }
}
