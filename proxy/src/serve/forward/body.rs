//! The bodies of a proxied exchange: the response body Gatehouse streams to the client,
//! which records the request when it ends and gives the upstream connection back to its
//! pool.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::pool::{Lease, Upload};
use super::routes::Target;
use crate::ops::metrics::ListenerMetrics;
use crate::serve::idle::InFlightGuard;

/// The body Gatehouse answers with: the upstream's, streamed, or a short one of its own.
/// When metrics or the access log are on, it counts the bytes it passes and records the
/// request when the body ends (or the client goes away).
pub struct ProxyBody {
    pub(super) inner: Either<Incoming, Full<Bytes>>,
    pub(super) completion: Option<Completion>,
    /// Who answered: what an aborted response is blamed on and logged with.
    pub(super) listener: Arc<str>,
    pub(super) target: Arc<Target>,
    pub(super) metrics: &'static ListenerMetrics,
    /// How long the upstream may leave the body without a byte (`upstream_timeout`).
    pub(super) upstream_timeout: Duration,
    /// Runs while the upstream's body has nothing for us; made the first time it has not,
    /// then reset in place, so responses that arrive whole never make one.
    pub(super) stall: Option<Pin<Box<Sleep>>>,
    /// The request counts as in flight (no idle timeout) until its response body ends.
    pub(super) busy: Option<InFlightGuard>,
    /// Whether the body has something for the client that the client has not taken yet
    /// (the head, at first): what `send_timeout` times.
    pub(super) waiting: bool,
    /// The upstream connection, given back to its pool when the body has ended.
    pub(super) lease: Option<Returnable>,
}

/// An upstream connection that can serve another request once this exchange is over.
pub(super) struct Returnable {
    pub lease: Lease,
    pub target: Arc<Target>,
    /// The request body's progress; `None` when it had none.
    pub upload: Option<Arc<Upload>>,
}

impl Returnable {
    fn put_back(self) {
        let uploaded = self.upload.is_none_or(|u| u.done.load(Ordering::Relaxed));
        if let (true, Some(pool)) = (uploaded, &self.target.http) {
            pool.put_back(self.lease);
        }
    }
}

/// What is recorded when a response body is done.
pub(super) struct Completion {
    pub start: Instant,
    pub status: StatusCode,
    pub bytes: u64,
    pub access: Option<Box<AccessEntry>>,
}

/// The fields of an access log line known when the response starts.
pub(super) struct AccessEntry {
    pub sni: Option<Arc<str>>,
    pub method: Method,
    pub path: String,
}

/// How a response ended, as the access log says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Complete,
    /// The upstream broke off the body: the client got a truncated response.
    UpstreamAborted,
    /// The client went away before the end.
    ClientGone,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::UpstreamAborted => "upstream_aborted",
            Self::ClientGone => "client_gone",
        }
    }
}

impl Completion {
    fn finish(self, body: &ProxyBody, ending: Ending) {
        let elapsed = self.start.elapsed();
        body.metrics.request(self.status, elapsed.as_secs_f64());
        if let Some(a) = self.access {
            tracing::info!(
                target: "access",
                listener = %body.listener,
                sni = a.sni.as_deref().unwrap_or("-"),
                method = %a.method,
                path = %a.path,
                status = self.status.as_u16(),
                upstream = %body.target.upstream,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                bytes = self.bytes,
                outcome = ending.as_str(),
                "request"
            );
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        self.set_waiting(false);
        // hyper does not poll a body that says it is over (empty, or all its bytes read).
        if let Some(l) = self.lease.take()
            && hyper::body::Body::is_end_stream(&self.inner)
        {
            l.put_back();
        }
        if let Some(c) = self.completion.take() {
            let ending = if hyper::body::Body::is_end_stream(&self.inner) {
                Ending::Complete
            } else {
                Ending::ClientGone
            };
            c.finish(self, ending);
        }
    }
}

impl ProxyBody {
    /// The response is over: record it and let the idle timer run.
    fn end(&mut self, ending: Ending) {
        if let Some(c) = self.completion.take() {
            c.finish(self, ending);
        }
        self.set_waiting(false);
        self.busy = None;
    }

    /// The upstream's body has nothing now: an error (which aborts the response) once it
    /// has had nothing for `upstream_timeout`, else pending.
    fn stalled(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        let timeout = self.upstream_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.lease = None;
        self.metrics.upstream_error("timeout");
        crate::serve::warnings::warn(crate::serve::warnings::Kind::UpstreamAborted, || {
            format!(
                "listener {}: upstream {} sent no body bytes for {timeout:?} (upstream_timeout); the response is cut",
                self.listener, self.target.upstream
            )
        });
        self.end(Ending::UpstreamAborted);
        Poll::Ready(Some(Err("the upstream stalled mid-body".into())))
    }

    /// Whether bytes wait for the client to take them (see [`ProxyBody::waiting`]).
    pub(super) fn set_waiting(&mut self, waiting: bool) {
        if let Some(busy) = &self.busy
            && waiting != self.waiting
        {
            busy.waiting_for_client(waiting);
            self.waiting = waiting;
        }
    }
}

type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl hyper::body::Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        // Being polled, the body's earlier frame (or the head) has been taken.
        if let Some(busy) = &self.busy {
            busy.sent();
        }
        self.set_waiting(false);
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(c), Some(data)) = (self.completion.as_mut(), frame.data_ref()) {
                    c.bytes += data.len() as u64;
                }
                self.set_waiting(true);
                let next = tokio::time::Instant::now() + self.upstream_timeout;
                if let Some(stall) = self.stall.as_mut() {
                    stall.as_mut().reset(next);
                }
            }
            Poll::Ready(None) => {
                if let Some(l) = self.lease.take() {
                    l.put_back();
                }
                self.end(Ending::Complete);
            }
            Poll::Ready(Some(Err(e))) => {
                // Only the upstream's body can fail: its connection broke mid-response.
                self.lease = None;
                self.metrics.upstream_error("reset");
                crate::serve::warnings::warn(crate::serve::warnings::Kind::UpstreamAborted, || {
                    format!(
                        "listener {}: upstream {} broke off a response mid-body ({e}); the client got it truncated",
                        self.listener, self.target.upstream
                    )
                });
                self.end(Ending::UpstreamAborted);
            }
            Poll::Pending => return self.stalled(cx),
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
