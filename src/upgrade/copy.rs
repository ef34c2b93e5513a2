//! Copying both ways between two upgraded connections, with an idle deadline.
//!
//! Like `tokio::io::copy_bidirectional` — each direction's end of stream shuts down the other
//! side's write half, and the tunnel lasts until both directions have ended — plus a deadline
//! that any byte in either direction pushes back. A tunnel whose peers went silent (a client
//! that vanished without a FIN, an upstream that stopped answering) would otherwise hold its
//! connection slot forever.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// One TLS record's worth of plaintext.
const BUFFER: usize = 16 * 1024;

/// How long closing a tunnel that did not end by itself may take.
const GOODBYE: Duration = Duration::from_secs(1);

/// Why a tunnel ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// Both sides closed their direction.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// The `cut` future resolved.
    Cut,
    Failed(io::Error),
}

#[derive(Debug)]
pub(super) struct Done {
    pub ended: Ended,
    /// Bytes from `a` to `b`, and from `b` to `a`.
    pub up: u64,
    pub down: u64,
}

/// Copies `a` → `b` and `b` → `a` until both directions end, nothing moves for `idle`, or
/// `cut` resolves. A tunnel ended early still gets its write halves shut down (TLS
/// `close_notify`, FIN), within a short bound.
pub(super) async fn join<A, B>(a: A, b: B, idle: Duration, cut: impl Future<Output = ()>) -> Done
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let traffic = Traffic::new();
    let ended = {
        let both = async {
            tokio::try_join!(
                pipe(&mut a_read, &mut b_write, &traffic.up, &traffic),
                pipe(&mut b_read, &mut a_write, &traffic.down, &traffic),
            )
        };
        tokio::select! {
            copied = both => match copied {
                Ok(_) => Ended::Closed,
                Err(e) => Ended::Failed(e),
            },
            () = traffic.quiet_for(idle) => Ended::Idle,
            () = cut => Ended::Cut,
        }
    };
    if !matches!(ended, Ended::Closed) {
        let goodbye = async { tokio::join!(a_write.shutdown(), b_write.shutdown()) };
        let _ = tokio::time::timeout(GOODBYE, goodbye).await;
    }
    Done {
        ended,
        up: traffic.up.load(Ordering::Relaxed),
        down: traffic.down.load(Ordering::Relaxed),
    }
}

/// Copies `from` → `to` until `from` ends, then shuts `to`'s write half down.
async fn pipe<R, W>(
    from: &mut R,
    to: &mut W,
    moved: &AtomicU64,
    traffic: &Traffic,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        traffic.touch();
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        traffic.touch();
        moved.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Bytes moved each way, and when anything last moved.
struct Traffic {
    start: Instant,
    /// Nanoseconds after `start`.
    last: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

impl Traffic {
    fn new() -> Traffic {
        Traffic {
            start: Instant::now(),
            last: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit`. Sleeps to the earliest moment that could
    /// be true and looks again, so traffic costs no timer updates.
    async fn quiet_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_nanos(self.last.load(Ordering::Relaxed));
            let deadline = self.start + last + limit;
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{duplex, DuplexStream};

    const IDLE: Duration = Duration::from_millis(500);
    /// Far beyond `IDLE`, so a slow machine cannot make a test flaky.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A tunnel between two in-memory pipes; returns the outer ends and the running join.
    fn tunnel(
        idle: Duration,
    ) -> (
        DuplexStream,
        DuplexStream,
        tokio::task::JoinHandle<Done>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (client, a) = duplex(64 * 1024);
        let (b, upstream) = duplex(64 * 1024);
        let (cut_tx, cut_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(join(a, b, idle, async {
            let _ = cut_rx.await;
        }));
        (client, upstream, task, cut_tx)
    }

    async fn read_exact(s: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(PATIENCE, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        buf
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_each_end_of_stream_is_passed_on() {
        let (mut client, mut upstream, task, _cut) = tunnel(PATIENCE);
        client.write_all(b"ping").await.unwrap();
        assert_eq!(read_exact(&mut upstream, 4).await, b"ping");
        upstream.write_all(b"pong!").await.unwrap();
        assert_eq!(read_exact(&mut client, 5).await, b"pong!");

        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        upstream.read_to_end(&mut rest).await.unwrap();
        assert!(
            rest.is_empty(),
            "the client's end of stream reached the upstream"
        );
        upstream.write_all(b"late").await.unwrap();
        assert_eq!(
            read_exact(&mut client, 4).await,
            b"late",
            "the other direction still flows"
        );
        upstream.shutdown().await.unwrap();

        let done = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
        assert!(matches!(done.ended, Ended::Closed), "{done:?}");
        assert_eq!((done.up, done.down), (4, 9));
    }

    #[tokio::test]
    async fn a_silent_tunnel_ends_and_both_sides_see_it_close() {
        let (mut client, mut upstream, task, _cut) = tunnel(IDLE);
        let done = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
        assert!(matches!(done.ended, Ended::Idle), "{done:?}");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        upstream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn traffic_in_either_direction_keeps_the_tunnel_open() {
        let (mut client, mut upstream, mut task, _cut) = tunnel(IDLE);
        for round in 0..12 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Alternate directions: each alone would be enough.
            let (from, to) = if round % 2 == 0 {
                (&mut client, &mut upstream)
            } else {
                (&mut upstream, &mut client)
            };
            from.write_all(b"x").await.unwrap();
            assert_eq!(read_exact(to, 1).await, b"x", "round {round}");
        }
        assert!(!task.is_finished(), "two idle timeouts passed with traffic");
        let done = tokio::time::timeout(PATIENCE, &mut task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(done.ended, Ended::Idle), "{done:?}");
    }

    #[tokio::test]
    async fn a_cut_ends_the_tunnel_at_once() {
        let (_client, _upstream, task, cut) = tunnel(PATIENCE * 10);
        cut.send(()).unwrap();
        let done = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
        assert!(matches!(done.ended, Ended::Cut), "{done:?}");
    }
}
