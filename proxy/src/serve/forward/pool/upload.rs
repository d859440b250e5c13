//! A request body on its way upstream, and what the exchange learns from it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::Incoming;

use crate::serve::idle::UnreadBody;

/// How a request body is on its way upstream; shared with the exchange that sent it.
#[derive(Default)]
pub struct Upload {
    /// Frames passed: the upstream timeout runs from the last one.
    pub frames: AtomicU64,
    /// The whole body was passed.
    pub done: AtomicBool,
    /// The client's body failed (malformed chunking, cut off): the exchange failed by the
    /// client's doing.
    failed: AtomicBool,
}

impl Upload {
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A request body on its way upstream; counts the frames it passes so the upstream
/// timeout can tell a long upload from a silent upstream, and notes its end so the
/// connection is reused only after a complete exchange.
pub struct UpstreamBody {
    pub inner: Incoming,
    pub progress: Option<Arc<Upload>>,
    /// Marks the client connection busy until the body has been read to its end
    /// (HTTP/1.1 bodies only).
    pub unread: Option<UnreadBody>,
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(p) = &self.progress {
            match &polled {
                Poll::Ready(Some(Ok(_))) => {
                    p.frames.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Ready(None) => p.done.store(true, Ordering::Relaxed),
                Poll::Ready(Some(Err(_))) => p.failed.store(true, Ordering::Relaxed),
                Poll::Pending => {}
            }
        }
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended && let Some(unread) = self.unread.take() {
            unread.read_to_end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
