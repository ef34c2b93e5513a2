//! How a [`RedisConfig`] becomes a fred [`Builder`]: URL, credentials, TLS trust, and
//! the timeouts and reconnect policy that keep a dead Redis from hanging requests.
//!
//! The choices, and why:
//!
//! - A URL ending in `/0` sends no SELECT (database 0 is where connections start), so the
//!   least-privilege ACL needs no `+select` for it.
//! - `fail_fast = false`: a Redis that is down at start-up is retried in the background like
//!   one that went down later, so the proxy starts and serves public routes.
//! - Reconnect forever with exponential backoff from 10 ms up to 2 s: recovery within about
//!   two seconds of Redis coming back, without hammering a Redis that stays down.
//! - `command_timeout` bounds each command, the TCP connect with its TLS handshake, and the
//!   set-up commands (AUTH, SELECT). A connection that leaves a command unanswered that long
//!   is closed and reconnected, so a half-open connection does not stay "connected".
//! - One attempt per command: fred would otherwise replay a command whose connection dropped
//!   in flight, and a replayed `SET NX` reports losing the lock it had just taken.
//! - No redirection followed by fred for a single command (`max_redirections = 0`). fred
//!   counts a redirected send as another attempt, so one attempt follows nothing (MOVED and
//!   ASK fail); and more attempts would both allow replays and let fred's single-command ASK
//!   path run, which takes another caller's reply for ASKING's (`redis_redirect.rs`). So a
//!   command a node answers MOVED or ASK (not run) fails inside fred, after fred has
//!   refreshed its slot table on MOVED, and `redis_redirect.rs` sends it once more in a
//!   MULTI/EXEC, which fred redirects correctly. Measured with slots moving under load
//!   (`tests/redis_reshard.rs`): one attempt and fred's default redirections, 51 failures
//!   and timeouts in 2,311 operations; `max_redirections = 2` with four attempts and the
//!   MULTI/EXEC retry, 3 replies handed to the wrong command (SMEMBERS answered `["OK"]`);
//!   no redirection and no retry, 839 failures in 9,342; this way, none in about 9,000.
//! - TLS (`rediss://`) uses rustls with the process's one provider (ring), the system trust
//!   anchors and `ca_file`, never the provider fred would pick by itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{TlsConfig, UnresponsiveConfig};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::StoreError;

pub use crate::config::RedisConfig;

/// Commands queued per connection beyond which callers get an immediate error instead of
/// more memory use.
const MAX_QUEUED_COMMANDS: usize = 8192;
/// Pub/sub messages fred buffers for our forwarding task before it reports a lag.
const MESSAGE_BUFFER: usize = 1024;

/// The URL schemes accepted (fred reads anything else as `redis://`).
const SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
    "rediss-sentinel",
];

/// The builder for every client of one store (the pool's and the subscriber).
pub(super) fn builder(options: &RedisConfig) -> Result<Builder, StoreError> {
    if options.pool_size == 0 {
        return Err(StoreError::Failed(
            "redis pool_size must be at least 1".into(),
        ));
    }
    if options.command_timeout.is_zero() {
        return Err(StoreError::Failed(
            "redis command_timeout must be positive".into(),
        ));
    }
    let scheme = options.url.expose().split_once("://").map(|(s, _)| s);
    if !scheme.is_some_and(|s| SCHEMES.contains(&s)) {
        return Err(StoreError::Failed(format!(
            "invalid Redis URL: the scheme must be one of {}",
            SCHEMES.join(", ")
        )));
    }
    let mut config = Config::from_url(options.url.expose())
        .map_err(|e| StoreError::Failed(format!("invalid Redis URL: {}", e.details())))?;
    if let Some(username) = &options.username {
        config.username = Some(username.clone());
    }
    if let Some(password) = &options.password {
        config.password = Some(password.expose().to_owned());
    }
    config.fail_fast = false;
    // Database 0 is where a new connection starts: skipping its SELECT spares the ACL.
    if config.database == Some(0) {
        config.database = None;
    }
    match &mut config.tls {
        Some(tls) => *tls = tls_config(options.ca_file.as_deref(), options.client_cert.as_ref())?,
        None if options.ca_file.is_some() || options.client_cert.is_some() => {
            return Err(StoreError::Failed(
                "redis ca_file or client_cert_file is set but the URL does not use TLS \
                 (rediss://)"
                    .into(),
            ))
        }
        None => {}
    }

    let timeout = options.command_timeout;
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|perf| {
            perf.default_command_timeout = timeout;
            perf.broadcast_channel_capacity = MESSAGE_BUFFER;
        })
        .with_connection_config(|conn| {
            conn.connection_timeout = timeout;
            conn.internal_command_timeout = timeout;
            conn.max_command_attempts = 1;
            conn.max_redirections = 0;
            conn.max_command_buffer_len = MAX_QUEUED_COMMANDS;
            conn.unresponsive = UnresponsiveConfig {
                max_timeout: Some(timeout),
                interval: (timeout / 4).max(Duration::from_millis(10)),
            };
            conn.tcp = TcpConfig {
                nodelay: Some(true),
                ..Default::default()
            };
        });
    let mut policy = ReconnectPolicy::new_exponential(0, 10, 2_000, 2);
    policy.set_jitter(10);
    builder.set_policy(policy);
    Ok(builder)
}

fn tls_config(
    ca_file: Option<&Path>,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<TlsConfig, StoreError> {
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::warn!(error = %err, "problem reading system CA certificates");
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if let Some(file) = ca_file {
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StoreError::Failed(format!("redis ca_file {}: {e}", file.display())))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(StoreError::Failed(format!(
                "redis ca_file {} holds no usable certificate",
                file.display()
            )));
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Failed(format!("redis TLS set-up: {e}")))?
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let certs = CertificateDer::pem_file_iter(cert_file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Failed(format!(
                        "redis client_cert_file {}: {e}",
                        cert_file.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(StoreError::Failed(format!(
                    "redis client_cert_file {} holds no certificate",
                    cert_file.display()
                )));
            }
            // The error names the file only: key material never reaches a log.
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| {
                StoreError::Failed(format!(
                    "redis client_key_file {} holds no usable private key (PEM)",
                    key_file.display()
                ))
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| StoreError::Failed(format!("redis client certificate and key: {e}")))?
        }
    };
    Ok(TlsConfig::from(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_passwords() {
        let mut options = RedisConfig::new("redis://user:hunter2@localhost:6379/0");
        options.password = Some(crate::config::Secret::new("hunter3"));
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("user"), "{shown}");
    }
}
