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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// Tracks whether `client` lost its connection (`up`), and logs losses and recoveries once
/// per change of `healthy` (shared by every client of a store, so an outage is one warning,
/// not one per connection). Call before `client.connect()`.
///
/// fred reports a dropped connection at once but keeps calling the client connected until its
/// first reconnection attempt; commands sent in between would wait out their timeout. `up`
/// closes that gap: false from the error until fred announces a new connection. Errors are
/// read first (`biased`), and fred sends the error before the reconnection, so `up` is never
/// left false once connected again.
pub(super) fn watch_connection(
    client: &Client,
    up: Arc<AtomicBool>,
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
                        up.store(false, Ordering::Release);
                        // fred names no server for a failed reconnection.
                        let server = server.map_or_else(|| "-".to_owned(), |s| s.to_string());
                        if healthy.swap(false, Ordering::Relaxed) {
                            tracing::warn!(%server, %error, "redis connection failed; reconnecting in the background");
                        } else {
                            tracing::debug!(%server, %error, "redis connection failed");
                        }
                    }
                    Err(RecvError::Lagged(_)) => up.store(false, Ordering::Release),
                    Err(RecvError::Closed) => return,
                },
                connection = connections.recv() => match connection {
                    Ok(server) => {
                        up.store(true, Ordering::Release);
                        if !healthy.swap(true, Ordering::Relaxed) {
                            tracing::info!(%server, "redis connection restored");
                        }
                    }
                    Err(RecvError::Lagged(_)) => up.store(true, Ordering::Release),
                    Err(RecvError::Closed) => return,
                },
            }
        }
    })
}
