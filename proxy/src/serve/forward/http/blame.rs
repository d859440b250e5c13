//! Who failed, told apart: a client connection that ended by the client's doing (a
//! protocol error, a header or send timeout) or a routine end; a request body the client
//! broke; an upstream that could not answer, or not within `upstream_timeout`. Each is
//! counted by the side that caused it and warned of, rate limited.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;

use hyper::StatusCode;

use super::{ConnCtx, HttpListener, Refusal};
use crate::serve::forward::pool::Upload;
use crate::serve::idle::Expired;
use crate::serve::warnings::{self, Kind};

impl HttpListener {
    /// A client connection ended with an error: a timeout that is the client's doing or a
    /// protocol error is counted and warned of (rate limited); the rest (the client went
    /// away, an idle connection closed) is routine.
    pub(super) fn ended_badly(&self, e: &hyper::Error, h2: bool) {
        let (kind, warning) = match Expired::of(e) {
            Some(Expired::Header) => ("header_timeout", Kind::HeaderTimeout),
            Some(Expired::Send) => ("send_timeout", Kind::SendTimeout),
            Some(Expired::Idle) => return,
            None if e.is_parse() || (h2 && !e.is_incomplete_message() && !is_io(e)) => {
                ("protocol", Kind::Protocol)
            }
            None => {
                tracing::debug!(listener = %self.name, error = %e, "connection ended with an error");
                return;
            }
        };
        self.metrics.client_error(kind);
        warnings::warn(warning, || {
            let cause = std::error::Error::source(e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!(
                "listener {}: client connection closed: {e}{cause}",
                self.name
            )
        });
    }
}

/// Whether a connection error is the socket's (reset, broken pipe): the client went away.
fn is_io(e: &hyper::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

impl ConnCtx {
    /// The client's request body broke off or was malformed (bad chunking): its error, not
    /// the upstream's.
    pub(super) fn bad_body(&self) -> Refusal {
        let listener = &self.listener;
        listener.metrics.client_error("request_body");
        warnings::warn(Kind::ClientBody, || {
            format!(
                "listener {}: client {} sent a malformed or incomplete request body: 400",
                listener.name,
                self.peer.to_str().unwrap_or("?")
            )
        });
        Refusal(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: the request body is malformed or incomplete\n",
        )
    }

    /// Counts and logs an upstream failure; the 502 to answer with.
    pub(super) fn unavailable(
        &self,
        e: &(dyn std::error::Error + 'static),
        connect: bool,
    ) -> Refusal {
        let listener = &self.listener;
        let upstream = &self.conn.target.upstream;
        if let Some(tls) = crate::serve::upstream_tls::rustls_error(e)
            && crate::serve::upstream_tls::is_verify_failure(tls)
        {
            listener.metrics.upstream_error("tls_verify");
            let reason = crate::serve::upstream_tls::explain(tls);
            tracing::warn!(listener = %listener.name, upstream = %upstream, "upstream certificate not trusted, 502: {reason}");
            return Refusal(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream's certificate is not trusted\n",
            );
        }
        listener
            .metrics
            .upstream_error(if connect { "connect" } else { "protocol" });
        let cause = e.source().map(|s| s.to_string()).unwrap_or_default();
        tracing::warn!(listener = %listener.name, upstream = %upstream, error = %e, cause = %cause, "upstream unavailable: 502");
        Refusal(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: the upstream is unavailable\n",
        )
    }
}

impl ConnCtx {
    /// Waits for the upstream's answer for `upstream_timeout` after the last request body
    /// frame it was given; 504 when it stays silent.
    /// The answer is pinned by the caller: this future holds a pointer to it, not a copy.
    pub(super) async fn in_time<F: Future>(
        &self,
        mut answer: Pin<&mut F>,
        upload: Option<&Upload>,
    ) -> Result<F::Output, Refusal> {
        let listener = &self.listener;
        let timeout = listener.upstream_timeout;
        let mut timer = std::pin::pin!(tokio::time::sleep(timeout));
        let mut seen = 0;
        let answered = std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                std::task::ready!(timer.as_mut().poll(cx));
                match upload.map(|u| u.frames.load(Ordering::Relaxed)) {
                    // The body is still flowing: the upstream's time starts again.
                    Some(frames) if frames != seen => {
                        seen = frames;
                        timer.as_mut().reset(tokio::time::Instant::now() + timeout);
                    }
                    _ => return Poll::Ready(None),
                }
            }
        });
        let answered = answered.await;
        if let Some(r) = answered {
            return Ok(r);
        }
        listener.metrics.upstream_error("timeout");
        tracing::warn!(listener = %listener.name, upstream = %self.conn.target.upstream, timeout = ?timeout, "upstream timed out: 504");
        Err(Refusal(
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the upstream did not answer in time\n",
        ))
    }
}
