//! Multi-node Redis on loopback for the topology tests: a Sentinel set-up (one primary, one
//! replica, three sentinels) and a three-primary Cluster made with `redis-cli --cluster
//! create`. Every process runs from a configuration file in one temporary directory, on a
//! free port of 127.0.0.1, and is killed when its topology is dropped.
//!
//! Readiness is proven, never slept on: a node is up once it answers PING, a sentinel set-up
//! once every sentinel knows the primary and the other sentinels, a cluster once every node
//! reports `cluster_state:ok`. Each wait is bounded and fails the test with the logs.
//!
//! `REDIS_SERVER` and `REDIS_CLI` override the binaries (default: on `PATH`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The name sentinels know the primary by.
pub const SERVICE: &str = "portcullis";
/// How long a set-up step (a node starting, sentinels meeting, the cluster agreeing) may take.
const SETUP_LIMIT: Duration = Duration::from_secs(20);
const PORT_ATTEMPTS: usize = 5;

/// One `redis-server` process (a data node or a sentinel).
pub struct Node {
    pub port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Starts a node in `dir` with the configuration `lines` (beside port, bind, dir, log and
    /// no persistence), as a sentinel if `sentinel`.
    pub fn start(dir: &Path, lines: &[String], sentinel: bool) -> Node {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let home = dir.join(port.to_string());
            std::fs::create_dir_all(&home).unwrap();
            let log = home.join("redis.log");
            let mut conf = format!(
                "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\nlogfile {}\n",
                home.display(),
                log.display()
            );
            for line in lines {
                conf.push_str(line);
                conf.push('\n');
            }
            let file = home.join("redis.conf");
            std::fs::write(&file, conf).unwrap();
            let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
            let mut command = Command::new(&binary);
            command.arg(&file);
            if sentinel {
                command.arg("--sentinel");
            }
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run `{binary}` ({e}): apt-get install redis-server")
                });
            let deadline = Instant::now() + SETUP_LIMIT;
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    last = std::fs::read_to_string(&log).unwrap_or_default();
                    break;
                }
                // Our own log naming our port proves a PONG came from our process.
                let ours = std::fs::read_to_string(&log)
                    .is_ok_and(|l| l.contains(&format!("port={port}")));
                let pong = command_on(port, "PING");
                // A node with a password answers NOAUTH: up too.
                if ours && (pong.starts_with("+PONG") || pong.starts_with("-NOAUTH")) {
                    guard(child.id());
                    return Node {
                        port,
                        log,
                        child: Some(child),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = std::fs::read_to_string(&log).unwrap_or_default();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start after {PORT_ATTEMPTS} attempts; last log:\n{last}");
    }

    /// Kills the node (SIGKILL): a machine that died.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is not running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// One inline command, its raw RESP reply.
    pub fn command(&self, line: &str) -> String {
        command_on(self.port, line)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One primary, one replica, three sentinels (quorum 2, `down-after-milliseconds 1000`).
pub struct Sentinel {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    _dir: TempDir,
}

impl Sentinel {
    /// Starts the set-up; `data` and `sentinel` are extra configuration lines for the data
    /// nodes and the sentinels (e.g. `requirepass`).
    pub fn start_with(data: &[String], sentinel: &[String]) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let primary = Node::start(dir.path(), data, false);
        let mut replica_conf = data.to_vec();
        replica_conf.push(format!("replicaof 127.0.0.1 {}", primary.port));
        let replica = Node::start(dir.path(), &replica_conf, false);
        let mut sentinel_conf = vec![
            format!("sentinel monitor {SERVICE} 127.0.0.1 {} 2", primary.port),
            format!("sentinel down-after-milliseconds {SERVICE} 1000"),
            format!("sentinel failover-timeout {SERVICE} 10000"),
            format!("sentinel parallel-syncs {SERVICE} 1"),
        ];
        sentinel_conf.extend(sentinel.iter().cloned());
        let sentinels = (0..3)
            .map(|_| Node::start(dir.path(), &sentinel_conf, true))
            .collect();
        let s = Sentinel {
            primary,
            replica,
            sentinels,
            _dir: dir,
        };
        s.wait_until_settled();
        s
    }

    pub fn start() -> Sentinel {
        Sentinel::start_with(&[], &[])
    }

    /// Bounded wait until the replica is in sync and every sentinel knows the replica and the
    /// two other sentinels (a failover needs all of that).
    fn wait_until_settled(&self) {
        let deadline = Instant::now() + SETUP_LIMIT;
        loop {
            let synced = self
                .replica
                .command("INFO replication")
                .contains("master_link_status:up");
            let known = self.sentinels.iter().all(|s| {
                let info = s.command(&format!("SENTINEL MASTER {SERVICE}"));
                field(&info, "num-other-sentinels") == Some("2")
                    && field(&info, "num-slaves") == Some("1")
            });
            if synced && known {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel set-up did not settle within {SETUP_LIMIT:?}:\n{}",
                self.sentinels[0].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis-sentinel://` naming the three sentinels and the service.
    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName={SERVICE}&node=127.0.0.1:{}&node=127.0.0.1:{}",
            self.sentinels[0].port, self.sentinels[1].port, self.sentinels[2].port
        )
    }

    /// The primary's port according to the first sentinel that answers.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let reply = s.command(&format!("SENTINEL GET-MASTER-ADDR-BY-NAME {SERVICE}"));
            reply.lines().filter_map(|l| l.parse().ok()).next_back()
        })
    }

    /// Bounded wait until the replica has applied every write the primary took.
    pub fn wait_replicated(&self) {
        let deadline = Instant::now() + SETUP_LIMIT;
        loop {
            let primary = self.primary.command("INFO replication");
            let replica = self.replica.command("INFO replication");
            let offset = field(&primary, "master_repl_offset");
            if offset.is_some() && offset == field(&replica, "slave_repl_offset") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not catch up:\n{primary}\n{replica}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Three primaries, no replicas, every slot covered.
pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: TempDir,
}

impl Cluster {
    /// Starts three cluster-enabled nodes (with extra configuration `lines`) and joins them
    /// with `redis-cli --cluster create`.
    pub fn start_with(lines: &[String], cli_auth: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = vec![
            "cluster-enabled yes".to_owned(),
            "cluster-node-timeout 2000".to_owned(),
        ];
        conf.extend(lines.iter().cloned());
        let nodes: Vec<Node> = (0..3)
            .map(|_| Node::start(dir.path(), &conf, false))
            .collect();
        let cli = std::env::var("REDIS_CLI").unwrap_or_else(|_| "redis-cli".into());
        let output = Command::new(&cli)
            .args(cli_auth)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{cli}` ({e}): apt-get install redis-tools"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Cluster { nodes, _dir: dir };
        let deadline = Instant::now() + SETUP_LIMIT;
        while !cluster.nodes.iter().all(|n| {
            let info = n.command_as(cli_auth, "CLUSTER INFO");
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
        }) {
            assert!(Instant::now() < deadline, "the cluster did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    pub fn start() -> Cluster {
        Cluster::start_with(&[], &[])
    }

    /// `redis-cluster://` naming the first node, the others as `node=`.
    pub fn url(&self) -> String {
        format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            self.nodes[0].port, self.nodes[1].port, self.nodes[2].port
        )
    }
}

impl Node {
    /// [`command`](Self::command) after `AUTH` when `auth` is `["-a", password]` (the
    /// redis-cli arguments the cluster was created with).
    pub fn command_as(&self, auth: &[&str], line: &str) -> String {
        match auth {
            ["-a", password] => {
                let reply = command_on(self.port, &format!("AUTH {password}\r\n{line}"));
                reply.strip_prefix("+OK\r\n").unwrap_or(&reply).to_owned()
            }
            _ => self.command(line),
        }
    }
}

/// `name:value` from an INFO reply, or `name` followed by its value on the next line in a
/// flattened `SENTINEL MASTER` reply.
pub fn field<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = reply.lines();
    while let Some(line) = lines.next() {
        if let Some(v) = line.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
            return Some(v.trim());
        }
        if line == name {
            // `$N` then the value.
            lines.next();
            return lines.next().map(str::trim);
        }
    }
    None
}

/// Kills process `pid` once this test process is gone: topologies shared by a whole test
/// binary live in statics, which are never dropped. The guard ends with the process it
/// watches.
fn guard(pid: u32) {
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -9 {pid} 2>/dev/null"
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Inline command(s) on `port`, then QUIT; the raw replies up to EOF (the QUIT's `+OK`
/// removed). Empty when nothing listens.
pub fn command_on(port: u16, line: &str) -> String {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(format!("{line}\r\nQUIT\r\n").as_bytes())
        .is_err()
    {
        return String::new();
    }
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let _ = stream.shutdown(Shutdown::Both);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.strip_suffix("+OK\r\n").unwrap_or(&text).to_owned()
}
