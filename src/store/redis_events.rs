//! Background tasks watching a Redis store's connections: the invalidation subscriber and
//! connection-state logging.
//!
//! Each task takes its fred receivers *before* the client connects (fred broadcasts the first
//! connection as a reconnection, and a receiver created later would miss it), and ends when the
//! client quits (fred then closes those receivers) or when the store aborts it.
//!
//! # Invalidation invariants
//!
//! - The subscriber (re)subscribes after every (re)connection, because a plain fred client
//!   does not remember subscriptions, and only then sends [`Invalidation::All`]: anything
//!   published while it was away is lost, and caches must not trust what they hold.
//! - A subscriber falling behind fred's message buffer also sends `All`, for the same reason.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::prelude::*;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Invalidation;

/// Forwards messages on `channel` to `tx` as [`Invalidation::Key`]s, subscribing after every
/// connection; the receiver returned resolves once the first subscription has been tried
/// (and its `All` sent). Call before `client.connect()`.
pub(super) fn forward_invalidations(
    client: &Client,
    channel: String,
    tx: broadcast::Sender<Invalidation>,
) -> (JoinHandle<()>, oneshot::Receiver<()>) {
    let mut messages = client.message_rx();
    let mut connections = client.reconnect_rx();
    let client = client.clone();
    let (attempted, first_attempt) = oneshot::channel();
    let mut attempted = Some(attempted);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Ok(message) if *message.channel == *channel => {
                        if let Some(key) = message.value.as_string() {
                            let _ = tx.send(Invalidation::Key(key));
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "invalidation subscriber fell behind; flushing caches");
                        let _ = tx.send(Invalidation::All);
                    }
                    Err(RecvError::Closed) => return,
                },
                connection = connections.recv() => match connection {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        if let Err(e) = client.subscribe(channel.as_str()).await {
                            tracing::error!(
                                %channel,
                                error = %e,
                                "cannot subscribe to the invalidation channel (does the Redis ACL allow it?)"
                            );
                        }
                        let _ = tx.send(Invalidation::All);
                        if let Some(attempted) = attempted.take() {
                            let _ = attempted.send(());
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    (task, first_attempt)
}

/// How long a lost connection keeps a client out of the rotation unless fred announces a new
/// one first. fred switches its own state from "connected" at its first reconnection attempt
/// (10 ms after the loss, see `redis_options.rs`); past this, its state alone decides.
const LOST_GRACE: Duration = Duration::from_secs(1);

/// Whether a client lost its connection lately: the gap between fred reporting a dropped
/// connection and fred no longer calling the client connected.
///
/// A flag set by the error event and cleared only by the connection event would trust the
/// order of two independent fred channels. That order does not hold in every topology (a
/// cluster announces each node's connection as it comes up, and the attempt as a whole may
/// still fail after), and a flag left down while fred is connected would fail every command
/// with "not connected to redis" for good. So the mark expires after [`LOST_GRACE`].
pub(super) struct Liveness {
    origin: Instant,
    grace: Duration,
    /// Milliseconds since `origin` (plus one) of the last loss; 0 when none since the last
    /// connection.
    lost_at: AtomicU64,
}

impl Liveness {
    pub(super) fn new() -> Liveness {
        Liveness::with_grace(LOST_GRACE)
    }

    fn with_grace(grace: Duration) -> Liveness {
        Liveness {
            origin: Instant::now(),
            grace,
            lost_at: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn lost(&self) {
        self.lost_at.store(self.now(), Ordering::Release);
    }

    fn restored(&self) {
        self.lost_at.store(0, Ordering::Release);
    }

    /// False from a loss until fred announces a connection or [`LOST_GRACE`] passes.
    pub(super) fn usable(&self) -> bool {
        match self.lost_at.load(Ordering::Acquire) {
            0 => true,
            at => self.now().saturating_sub(at) >= self.grace.as_millis() as u64,
        }
    }
}

/// Tracks whether `client` lost its connection (`up`), and logs losses and recoveries once
/// per change of `healthy` (shared by every client of a store, so an outage is one warning,
/// not one per connection). Call before `client.connect()`.
///
/// fred reports a dropped connection at once but keeps calling the client connected until its
/// first reconnection attempt; commands sent in between would wait out their timeout. `up`
/// closes that gap: false from the error until fred announces a new connection. Errors are
/// read first (`biased`); whatever the order, a loss mark expires (see [`Liveness`]).
pub(super) fn watch_connection(
    client: &Client,
    up: Arc<Liveness>,
    healthy: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let mut errors = client.error_rx();
    let mut connections = client.reconnect_rx();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                error = errors.recv() => match error {
                    Ok((error, server)) => {
                        up.lost();
                        // fred names no server for a failed reconnection.
                        let server = server.map_or_else(|| "-".to_owned(), |s| s.to_string());
                        if healthy.swap(false, Ordering::Relaxed) {
                            tracing::warn!(%server, %error, "redis connection failed; reconnecting in the background");
                        } else {
                            tracing::debug!(%server, %error, "redis connection failed");
                        }
                    }
                    Err(RecvError::Lagged(_)) => up.lost(),
                    Err(RecvError::Closed) => return,
                },
                connection = connections.recv() => match connection {
                    Ok(server) => {
                        up.restored();
                        if !healthy.swap(true, Ordering::Relaxed) {
                            tracing::info!(%server, "redis connection restored");
                        }
                    }
                    Err(RecvError::Lagged(_)) => up.restored(),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_mark_lasts_until_a_connection_or_the_grace_period() {
        let up = Liveness::with_grace(Duration::from_millis(50));
        assert!(up.usable());
        up.lost();
        assert!(!up.usable());
        up.restored();
        assert!(up.usable());
        // No connection event follows the loss (events out of order): fred's own state
        // decides again after the grace period.
        up.lost();
        assert!(!up.usable());
        std::thread::sleep(Duration::from_millis(60));
        assert!(up.usable());
    }
}
