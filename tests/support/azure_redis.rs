//! Azure Cache for Redis with Entra ID, emulated on a real `redis-server`:
//!
//! - every `https://redis.azure.com` token the stand-in issues becomes a password of the Redis
//!   ACL user named by its `oid` (`ACL SETUSER <oid> on >token ~* &* +@all`; several may be
//!   live at once) and is removed at its expiry (`ACL SETUSER <oid> <token`), as Azure accepts
//!   a token until it expires;
//! - a relay in front of Redis reads the client's commands (RESP arrays, enough to see `AUTH`
//!   and `HELLO … AUTH`) and closes a connection once the token of its last AUTH has expired,
//!   as Azure does, counting each such close.
//!
//! The relay forwards bytes untouched in both directions; only a copy of the client's stream
//! is parsed. Every wait is bounded; the relay stops with the value.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use entra_standin::{IssuedResourceToken, TokenHook};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::redis::RedisServer;

/// The audience of Redis tokens.
pub const REDIS_AUDIENCE: &str = "https://redis.azure.com";
/// Largest command the relay parses (a JWT is a few kilobytes).
const MAX_PARSE: usize = 1 << 20;

/// What the relay saw.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub connections: AtomicUsize,
    /// Every AUTH (or HELLO with AUTH) seen.
    pub auths: AtomicUsize,
    /// AUTHs after the first on their connection: re-authentications.
    pub reauths: AtomicUsize,
    /// Connections closed because their token expired.
    pub expired_closes: AtomicUsize,
    /// Tokens mirrored into the ACL, and removed at expiry.
    pub tokens_added: AtomicUsize,
    pub tokens_removed: AtomicUsize,
}

impl RelayStats {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::Relaxed)
    }
}

pub struct AzureRedis {
    pub redis: Arc<RedisServer>,
    pub stats: Arc<RelayStats>,
    port: u16,
    relay: JoinHandle<()>,
}

impl AzureRedis {
    pub async fn start() -> AzureRedis {
        let redis = Arc::new(RedisServer::start());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(RelayStats::default());
        let relay = tokio::spawn(accept(listener, redis.port, stats.clone()));
        AzureRedis {
            redis,
            stats,
            port,
            relay,
        }
    }

    /// The relay's URL, as the proxy is given it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The stand-in hook that mirrors Redis tokens into ACL users.
    pub fn hook(&self) -> TokenHook {
        let redis = self.redis.clone();
        let stats = self.stats.clone();
        Arc::new(move |issued: IssuedResourceToken| {
            let redis = redis.clone();
            let stats = stats.clone();
            Box::pin(async move {
                if issued.audience != REDIS_AUDIENCE {
                    return;
                }
                let (oid, token) = (issued.oid.clone(), issued.token.clone());
                let r = redis.clone();
                let reply = tokio::task::spawn_blocking(move || {
                    r.command(&format!("ACL SETUSER {oid} on >{token} ~* &* +@all"))
                })
                .await
                .unwrap();
                assert!(reply.starts_with("+OK"), "ACL SETUSER: {reply}");
                stats.tokens_added.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let left = (issued.expires * 1000).saturating_sub(now_ms());
                    tokio::time::sleep(Duration::from_millis(left)).await;
                    let line = format!("ACL SETUSER {} <{}", issued.oid, issued.token);
                    let _ = tokio::task::spawn_blocking(move || redis.command(&line)).await;
                    stats.tokens_removed.fetch_add(1, Ordering::Relaxed);
                });
            })
        })
    }
}

impl Drop for AzureRedis {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The `exp` of a JWT, in Unix milliseconds (0 if unreadable: such a token expired long ago).
fn expiry_ms(token: &str) -> u64 {
    let payload = token.split('.').nth(1).unwrap_or("");
    let claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    claims["exp"].as_u64().unwrap_or(0) * 1000
}

async fn accept(listener: TcpListener, redis_port: u16, stats: Arc<RelayStats>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            if let Ok(server) = TcpStream::connect(("127.0.0.1", redis_port)).await {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                relay(client, server, stats).await;
            }
        });
    }
}

/// One connection: bytes both ways, the client's commands parsed for AUTH, and a watchdog
/// that closes the connection when the last AUTH's token expires.
async fn relay(client: TcpStream, server: TcpStream, stats: Arc<RelayStats>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Unix ms at which the connection's credential expires; None before any AUTH.
    let expiry: Arc<Mutex<Option<u64>>> = Arc::new(Mutex::new(None));
    let seen = expiry.clone();
    let auths = stats.clone();
    let upstream = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some((args, used)) = parse_command(&pending) {
                pending.drain(..used);
                if let Some(token) = auth_password(&args) {
                    let mut e = seen.lock().unwrap();
                    if e.is_some() {
                        auths.reauths.fetch_add(1, Ordering::Relaxed);
                    }
                    auths.auths.fetch_add(1, Ordering::Relaxed);
                    *e = Some(expiry_ms(&token));
                }
            }
            if pending.len() > MAX_PARSE {
                pending.clear();
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    let watchdog = async {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let e = *expiry.lock().unwrap();
            if e.is_some_and(|e| now_ms() >= e) {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = watchdog => {
            stats.expired_closes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The arguments of `AUTH [user] pass` or `HELLO v AUTH user pass …`: the password.
fn auth_password(args: &[Vec<u8>]) -> Option<String> {
    let name = String::from_utf8_lossy(args.first()?).to_ascii_uppercase();
    let pass = match name.as_str() {
        "AUTH" => args.last()?,
        "HELLO" => {
            let at = args.iter().position(|a| a.eq_ignore_ascii_case(b"AUTH"))?;
            args.get(at + 2)?
        }
        _ => return None,
    };
    Some(String::from_utf8_lossy(pass).into_owned())
}

/// One command from the front of `buf` (a RESP array of bulk strings, or an inline command):
/// its arguments and its length in bytes; `None` until it is complete.
fn parse_command(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    let line = |from: usize| -> Option<(&[u8], usize)> {
        let end = buf[from..].windows(2).position(|w| w == b"\r\n")? + from;
        Some((&buf[from..end], end + 2))
    };
    let (head, mut at) = line(0)?;
    let Some(count) = head.strip_prefix(b"*") else {
        // An inline command (fred writes HELLO this way).
        let args = head
            .split(|b| *b == b' ')
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return Some((args, at));
    };
    let count: usize = std::str::from_utf8(count).ok()?.parse().ok()?;
    let mut args = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let (len, next) = line(at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        args.push(buf[next..next + len].to_vec());
        at = next + len + 2;
    }
    Some((args, at))
}

#[test]
fn commands_are_parsed_only_when_complete() {
    let cmd = b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$3\r\ntok\r\n*1\r\n$4\r\nPING\r\n";
    let (args, used) = parse_command(cmd).unwrap();
    assert_eq!(auth_password(&args).as_deref(), Some("tok"));
    assert_eq!(&cmd[used..], b"*1\r\n$4\r\nPING\r\n");
    assert!(parse_command(&cmd[..20]).is_none());
    let hello = b"*6\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2\r\npw\r\n$1\r\nx\r\n";
    let (args, _) = parse_command(hello).unwrap();
    assert_eq!(auth_password(&args).as_deref(), Some("pw"));
    let (args, _) = parse_command(b"HELLO 3 AUTH u pw2 SETNAME x\r\n").unwrap();
    assert_eq!(auth_password(&args).as_deref(), Some("pw2"));
}
