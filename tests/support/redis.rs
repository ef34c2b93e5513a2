//! A throw-away `redis-server` per test, on a free port of 127.0.0.1 (never the system one on
//! 6379), with no persistence and its files in a temporary directory. Killed on drop.
//!
//! The port is found by binding 127.0.0.1:0 and releasing it, so another process can take it
//! in between: a server that fails to start is retried on another port. `stop` and `restart`
//! (same port, same arguments) let tests exercise a Redis that goes away and comes back;
//! `pause` and `resume` one that stops answering.
//!
//! `REDIS_SERVER` overrides the binary (default: `redis-server` on `PATH`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a freshly spawned server gets to answer PING.
const START_LIMIT: Duration = Duration::from_secs(10);
/// How many ports to try before giving up.
const PORT_ATTEMPTS: usize = 5;

pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// A server with no password.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server with extra command-line configuration, e.g. `["--requirepass", "pw"]` or
    /// `["--user", "name", "on", ">pw", "~prefix:*", "+get"]` (one argument per ACL rule).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temporary directory for redis-server");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(port, &args, dir.path()) {
                Ok(child) => {
                    return RedisServer {
                        port,
                        args,
                        dir,
                        child: Some(child),
                    }
                }
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server did not start after {PORT_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// `redis://127.0.0.1:P/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, no goodbye to clients): a Redis that died.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server would still die from SIGKILL; nothing to undo first.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered, like a
    /// Redis behind a dead network path.
    pub fn pause(&mut self) {
        self.signal("-STOP");
    }

    /// Undoes [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is not running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the server again on the same port with the same arguments. The data is gone
    /// (no persistence), as are ACL users created at run time.
    pub fn restart(&mut self) {
        self.stop();
        // The port was ours a moment ago; only a race with another process can take it, so a
        // few attempts cover a slow release.
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match spawn(self.port, &self.args, self.dir.path()) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(log) => last_log = log,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "redis-server did not restart on port {}; log:\n{last_log}",
            self.port
        );
    }
}

impl RedisServer {
    /// How many times the server has run `command` (lower case), from `INFO commandstats`.
    pub fn calls(&self, command: &str) -> u64 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(b"INFO commandstats\r\n").unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        // A bulk reply: `$<len>\r\n<text>\r\n`; read until the text is complete.
        loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            let complete = text.split_once("\r\n").is_some_and(|(len, rest)| {
                len.trim_start_matches('$')
                    .parse::<usize>()
                    .is_ok_and(|len| rest.len() >= len)
            });
            if n == 0 || complete {
                break;
            }
        }
        let text = String::from_utf8_lossy(&reply);
        let prefix = format!("cmdstat_{command}:calls=");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().unwrap())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns a server on `port` and waits until it answers; on failure returns its log.
fn spawn(port: u16, args: &[String], dir: &Path) -> Result<Child, String> {
    let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let log = dir.join("redis.log");
    let _ = std::fs::remove_file(&log);
    let mut child = Command::new(&binary)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{binary}` ({e}): the store tests need redis-server \
                 (apt-get install redis-server, or set REDIS_SERVER to its path)"
            )
        });
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{err}{log}"));
        }
        // Another test may have taken the same port a moment ago: only our own server's log
        // saying it listens proves the PING reached it.
        let ready =
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Ready to accept connections"));
        if ready && answers_ping(port) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("no answer to PING within {START_LIMIT:?}\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// True once a server on `port` answers an inline PING, with PONG or with an authentication
/// error (a server with a password or without a default user is up too).
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    let _ = stream.shutdown(Shutdown::Both);
    let reply = &buf[..n];
    reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") || reply.starts_with(b"-NOPERM")
}

impl RedisServer {
    /// Sends one inline command (`STRLEN key`) and returns the raw reply (RESP text).
    pub fn command(&self, line: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        // QUIT after the command: the server answers both and closes, so the reply ends at EOF.
        stream
            .write_all(format!("{line}\r\nQUIT\r\n").as_bytes())
            .unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let text = String::from_utf8_lossy(&reply).into_owned();
        text.strip_suffix("+OK\r\n").unwrap_or(&text).to_owned()
    }

    /// The keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let prefix = pattern.trim_end_matches('*');
        self.command(&format!("KEYS {pattern}"))
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}
