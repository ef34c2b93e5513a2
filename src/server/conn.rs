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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
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
        // Every request wakes this task several times; the signals are looked at only when one
        // of their own wakers fired, not on each of those wake-ups.
        let signal = Gated::new(next_signal(&mut signals, activity, idle_timeout, closing));
        tokio::select! {
            biased;
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            signal = signal => match signal {
                Signal::Stop => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Signal::Idle => {
                    tracing::debug!(%peer, "closing an idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Signal::Cut => return,
            },
        }
    }
}

/// What ends a connection's wait: the listener stopping, the connection going idle (both
/// only while it is not already closing), or the shutdown grace running out.
enum Signal {
    Stop,
    Idle,
    Cut,
}

async fn next_signal(
    signals: &mut Signals,
    activity: &Activity,
    idle_timeout: Duration,
    closing: bool,
) -> Signal {
    tokio::select! {
        () = raised(&mut signals.stop), if !closing => Signal::Stop,
        () = activity.idle_for(idle_timeout), if !closing => Signal::Idle,
        () = raised(&mut signals.cut) => Signal::Cut,
    }
}

pin_project_lite::pin_project! {
    /// A future polled only on its first poll and after one of the wakers it registered has
    /// fired: waking its task for another reason costs an atomic swap, not a poll.
    struct Gated<F> {
        #[pin]
        inner: F,
        gate: Arc<Gate>,
        waker: Waker,
    }
}

struct Gate {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> Gated<F> {
    fn new(inner: F) -> Gated<F> {
        let gate = Arc::new(Gate {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(gate.clone());
        Gated { inner, gate, waker }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before the flag is read, so a wake between the two is never lost.
        this.gate.task.register(cx.waker());
        if !this.gate.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
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

    /// Counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_gated_future_is_polled_first_and_then_only_after_its_own_wake_up() {
        let polls = Arc::new(AtomicUsize::new(0));
        let inner_waker: Arc<std::sync::Mutex<Option<Waker>>> = Arc::default();
        let (p, w) = (polls.clone(), inner_waker.clone());
        let inner = std::future::poll_fn(move |cx| {
            let n = p.fetch_add(1, Ordering::SeqCst) + 1;
            *w.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            if n == 2 {
                Poll::Ready(n)
            } else {
                Poll::Pending
            }
        });
        let task = Arc::new(Counter(AtomicUsize::new(0)));
        let task_waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&task_waker);
        let mut gated = Box::pin(Gated::new(inner));

        assert!(gated.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "the first poll reaches the future"
        );
        for _ in 0..3 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "wake-ups of others poll nothing"
        );

        let own = inner_waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        own.expect("the future registered a waker").wake();
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "its wake-up wakes the task"
        );
        assert_eq!(gated.as_mut().poll(&mut cx), Poll::Ready(2));
    }

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
