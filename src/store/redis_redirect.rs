//! The store's one-key commands, and how they follow a cluster's redirections (MOVED, ASK)
//! while slots move between primaries.
//!
//! fred 10.1 follows redirections correctly for a MULTI/EXEC transaction, not for a single
//! command. On ASK it sends ASKING to the importing node and takes the next reply on that
//! connection as ASKING's, whatever else is in flight there (another caller's reply is
//! swallowed, and the replies after it shift by one: `tests/redis_reshard.rs` saw SMEMBERS
//! answered `["OK"]`), then sends the command again by its stale slot table: to the
//! migrating node, which answers ASK again. Its transaction path first lets every in-flight
//! reply arrive, then sends ASKING, MULTI, the command and EXEC to the node the redirection
//! named, as the cluster specification asks.
//!
//! So the clients follow no redirection themselves (`max_redirections = 0` in
//! `redis_options.rs`; on MOVED fred still refreshes its slot table before the command
//! fails), and a command that was redirected is sent once more here, alone in a MULTI/EXEC
//! that may follow up to [`MAX_REDIRECTIONS`] redirections. A redirected command was not run,
//! so sending it again runs it once. Commands go as fred custom commands (their name and
//! arguments) so that both paths send exactly the same command, Lua scripts included; `GET`,
//! read on every request whose cached session is due for a check, goes first as fred's own
//! `get` (the same bytes), which fred pipelines where it writes custom commands one by one
//! ([`run_as`]).
//!
//! Two limits, both only for a command that was redirected: fred sends a transaction whose
//! connection dropped once more (the one replay the rest of the store avoids), and the
//! `WAIT` of `min_replicas_ack` goes by the slot table, so after an ASK it asks the node
//! the slot is leaving rather than the one that took the write.

use fred::prelude::*;
use fred::types::{CustomCommand, FromValue};

/// Redirections the retry may follow: an ASK, then a MOVED if the slot finished moving
/// meanwhile.
pub const MAX_REDIRECTIONS: u32 = 2;

/// fred's error for a command that met a redirection with none left to follow. It is only
/// raised for a command a node answered with MOVED or ASK, that is one that did not run.
const REDIRECTED: &str = "Too many redirections.";

/// One command naming one key, kept whole so that it can be sent again.
pub struct KeyCommand {
    command: CustomCommand,
    args: Vec<Value>,
}

impl KeyCommand {
    /// `name key`, arguments added with [`arg`](Self::arg).
    pub fn new(name: &'static str, key: &str) -> KeyCommand {
        KeyCommand {
            command: CustomCommand::new_static(name, Some(slot(key)), false),
            args: vec![Value::from(key)],
        }
    }

    /// `EVALSHA sha 1 key args…` or `EVAL script 1 key args…`.
    pub fn script(name: &'static str, script: &str, key: &str, args: Vec<Value>) -> KeyCommand {
        let mut all = vec![Value::from(script), Value::from(1), Value::from(key)];
        all.extend(args);
        KeyCommand {
            command: CustomCommand::new_static(name, Some(slot(key)), false),
            args: all,
        }
    }

    pub fn arg(mut self, value: impl Into<Value>) -> KeyCommand {
        self.args.push(value.into());
        self
    }

    /// Sends the command; if a node redirected it, sends it once more in a transaction.
    pub async fn run<R: FromValue>(self, client: &Client) -> Result<R, Error> {
        let first = Box::pin(client.custom::<Value, _>(self.command.clone(), self.args.clone()));
        run_as(client, first, || self).await
    }

    async fn in_transaction(self, client: &Client) -> Result<Value, Error> {
        let transaction = client.multi();
        let options = Options {
            max_redirections: Some(MAX_REDIRECTIONS),
            ..Options::default()
        };
        let _queued: Value = transaction
            .with_options(&options)
            .custom(self.command, self.args)
            .await?;
        let replies: Vec<Value> = transaction.exec(true).await?;
        replies
            .into_iter()
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Protocol, "EXEC answered no reply"))
    }
}

/// [`KeyCommand::run`], the first attempt being `first`: the command `retry` makes, sent as
/// fred's own (`client.get(key)` for `GET key`, the same bytes on the wire). fred writes a
/// custom command, as a script, alone and at once; its own commands it writes together with
/// whatever other callers queued meanwhile, one write for all. `retry` is called only for a
/// command that was redirected (computing its slot is not free).
///
/// fred's command futures are several kilobytes: boxed where they are made, so that the
/// futures around them hold a pointer and moving those copies a few bytes, not the command.
pub async fn run_as<R: FromValue, F>(
    client: &Client,
    first: std::pin::Pin<Box<F>>,
    retry: impl FnOnce() -> KeyCommand,
) -> Result<R, Error>
where
    F: std::future::Future<Output = Result<Value, Error>> + ?Sized,
{
    match first.await {
        // Boxed: a transaction's future is several times a command's, and is rarely made.
        Err(e) if was_redirected(&e) => Box::pin(retry().in_transaction(client)).await?.convert(),
        reply => reply?.convert(),
    }
}

fn slot(key: &str) -> u16 {
    fred::util::redis_keyslot(key.as_bytes())
}

fn was_redirected(e: &Error) -> bool {
    *e.kind() == ErrorKind::Routing && e.details() == REDIRECTED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fred_s_redirection_error_is_sent_again() {
        assert!(was_redirected(&Error::new(ErrorKind::Routing, REDIRECTED)));
        // Lost connections and refusals may have run, or will fail again: never re-sent.
        assert!(!was_redirected(&Error::new(
            ErrorKind::Routing,
            "Failed to route command."
        )));
        assert!(!was_redirected(&Error::new(
            ErrorKind::Unknown,
            "Too many failed write attempts."
        )));
        assert!(!was_redirected(&Error::new(ErrorKind::IO, REDIRECTED)));
    }

    #[test]
    fn scripts_name_their_one_key_after_the_key_count() {
        let command = KeyCommand::script("EVALSHA", "abc", "k", vec![Value::from("v")]);
        let args: Vec<String> = command
            .args
            .iter()
            .map(|v| v.as_string().unwrap_or_default())
            .collect();
        assert_eq!(args, ["abc", "1", "k", "v"]);
        assert_eq!(command.command.cluster_hash, Some(slot("k")).into());
    }
}
