//! One HTTP connection after the handshake: requests in flight, the idle deadline, and the
//! graceful stop.
//!
//! hyper's HTTP/2 server keeps a connection open as long as the client answers pings, so a
//! client could hold connections (and `max_connections` slots) forever without sending a
//! request. A request is in flight from the moment hyper calls the service until the
//! response body is finished or dropped ([`Tracked`] holds an [`InFlight`]); a connection
//! with nothing in flight for `server.idle_timeout` is asked to close — HTTP/2 with a GOAWAY,
//! HTTP/1.1 at once (it is between requests) — exactly as a shutdown asks it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::accept::{raised, Signals};

/// Serves HTTP on `io` with `handler` until the client closes, the connection goes idle, or
/// the listener stops.
pub(super) async fn serve<I, H, Fut, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    peer: SocketAddr,
    idle_timeout: Duration,
    signals: Signals,
    handler: H,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Activity::new();
    let counted = activity.clone();
    let service = service_fn(move |req| {
        let in_flight = counted.begin();
        let answer = handler(req);
        async move {
            let resp = answer.await;
            Ok::<_, Infallible>(resp.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    drive(conn, &activity, idle_timeout, signals, peer).await;
}

/// Polls `conn` to its end, asking it to close when it has been idle too long or the
/// listener stops, and dropping it when the shutdown grace has passed.
async fn drive<C>(
    conn: C,
    activity: &Activity,
    idle_timeout: Duration,
    mut signals: Signals,
    peer: SocketAddr,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = raised(&mut signals.stop), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = activity.idle_for(idle_timeout), if !closing => {
                tracing::debug!(%peer, "closing an idle connection");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = raised(&mut signals.cut) => return,
        }
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the count last went to zero, in nanoseconds after `start`.
    quiet_since: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            quiet_since: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Resolves once nothing has been in flight for `limit`. Sleeps to the earliest moment
    /// that could be true and looks again, so requests cost no timer updates.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let now = Instant::now();
            let deadline = if self.in_flight.load(Ordering::Acquire) > 0 {
                now + limit
            } else {
                self.start + Duration::from_nanos(self.quiet_since.load(Ordering::Acquire)) + limit
            };
            if deadline <= now {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in flight, until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let now = u64::try_from(a.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Stamp first: whoever sees the count at zero then sees this time or a later one.
        a.quiet_since.store(now, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it is finished or dropped
    /// (hyper drops a body once it has sent it, or when the client goes away).
    struct Tracked<B> {
        #[pin]
        body: B,
        _in_flight: InFlight,
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(100);
    /// Far beyond `LIMIT`, so a slow machine cannot make a test flaky.
    const PATIENCE: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_connection_without_requests_becomes_idle() {
        let a = Activity::new();
        tokio::time::timeout(PATIENCE, a.idle_for(LIMIT))
            .await
            .expect("idle");
    }

    #[tokio::test]
    async fn a_request_in_flight_keeps_the_connection_busy_until_it_ends() {
        let a = Activity::new();
        let req = a.begin();
        assert!(
            tokio::time::timeout(LIMIT * 4, a.idle_for(LIMIT))
                .await
                .is_err(),
            "busy while a request is in flight"
        );
        let ended = Instant::now();
        drop(req);
        tokio::time::timeout(PATIENCE, a.idle_for(LIMIT))
            .await
            .expect("idle after the request");
        assert!(
            ended.elapsed() >= LIMIT,
            "the idle time counts from the end of the last request"
        );
    }

    #[tokio::test]
    async fn the_body_holds_the_request_in_flight_until_it_is_dropped() {
        let a = Activity::new();
        let body = Tracked {
            body: http_body_util::Empty::<Bytes>::new(),
            _in_flight: a.begin(),
        };
        assert_eq!(a.in_flight.load(Ordering::Acquire), 1);
        drop(body);
        assert_eq!(a.in_flight.load(Ordering::Acquire), 0);
    }
}
