//! The upstream's response body. For HTTP/1.1 it also drives the connection the response
//! arrives on, and gives that connection back to its pool once the response has ended.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::pool::{unwatched, Pool, H1};

/// A response body from an upstream.
pub struct UpstreamBody {
    inner: Incoming,
    /// The HTTP/1.1 connection to drive and return, with its pool.
    conn: Option<(H1, Arc<Pool>)>,
    ended: bool,
}

impl UpstreamBody {
    /// A body whose connection runs elsewhere (HTTP/2, an upgrade).
    pub(super) fn plain(inner: Incoming) -> UpstreamBody {
        UpstreamBody {
            inner,
            conn: None,
            ended: false,
        }
    }

    pub(super) fn pooled(inner: Incoming, h1: H1, pool: Arc<Pool>) -> UpstreamBody {
        UpstreamBody {
            inner,
            conn: Some((h1, pool)),
            ended: false,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.conn {
            Some((h1, _)) => {
                h1.drive(cx);
                // The body's data comes only from the connection just driven (with this task's
                // waker, for the socket): looked at unwatched, so data arriving does not wake
                // this task once more for nothing.
                Pin::new(&mut this.inner).poll_frame(&mut unwatched())
            }
            None => Pin::new(&mut this.inner).poll_frame(cx),
        };
        if let Poll::Ready(None) = polled {
            this.ended = true;
            if let Some((mut h1, pool)) = this.conn.take() {
                // Let the connection finish the exchange and ask for the next request.
                if h1.drive(cx) {
                    pool.check_in(h1);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body the downstream never polled because it was empty (HEAD, 204, 304,
        // Content-Length: 0) has ended too. One dropped part-way leaves its connection
        // unusable: dropping the connection closes it.
        if let Some((h1, pool)) = self.conn.take() {
            if self.is_end_stream() {
                pool.check_in(h1);
            }
        }
    }
}
