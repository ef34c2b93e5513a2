//! The `portcullis` binary: `check`, `--version`, environment overrides, and `run` with signals.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{eventually, free_port, Pki, Upstream};

mod reload;
mod store;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Copies the shipped example configuration into `dir`, with a certificate from the returned
/// CA.
fn example(dir: &Path) -> Pki {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::copy(root.join("portcullis.toml"), dir.join("portcullis.toml")).unwrap();
    std::fs::copy(root.join("routes.toml"), dir.join("routes.toml")).unwrap();
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    let pki = Pki::new();
    let (cert, key) = pki.leaf(&["wiki.example.com"]);
    std::fs::write(dir.join("tls/cert.pem"), cert).unwrap();
    std::fs::write(dir.join("tls/key.pem"), key).unwrap();
    pki
}

/// An HTTPS client that trusts `pki` and sends `wiki.example.com` to 127.0.0.1:`port`.
pub(crate) fn wiki_client(pki: &Pki, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve(
            "wiki.example.com",
            format!("127.0.0.1:{port}").parse().unwrap(),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The name of the test upstream that answered `GET https://wiki.example.com:port/`.
async fn wiki_upstream(client: &reqwest::Client, port: u16) -> String {
    match client
        .get(format!("https://wiki.example.com:{port}/"))
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => {
            let echo: serde_json::Value =
                serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            echo["upstream"].as_str().unwrap_or("").to_owned()
        }
        Ok(r) => format!("status {}", r.status()),
        Err(e) => format!("error {e}"),
    }
}

/// The shipped example configuration in a new directory, its routes sent to `up`.
pub(crate) fn example_to(up: &Upstream) -> (tempfile::TempDir, Pki) {
    let dir = tempfile::TempDir::new().unwrap();
    let pki = example(dir.path());
    let routes = std::fs::read_to_string(dir.path().join("routes.toml"))
        .unwrap()
        .replace("http://127.0.0.1:3000", &up.url());
    std::fs::write(dir.path().join("routes.toml"), routes).unwrap();
    (dir, pki)
}

/// `portcullis run --config <config>` on free loopback ports: (child, https, http, admin).
pub(crate) fn spawn_run(config: &Path) -> (tokio::process::Child, u16, u16, u16) {
    spawn_run_with(config, &[])
}

/// `spawn_run` with extra environment variables.
fn spawn_run_with(config: &Path, env: &[(&str, &str)]) -> (tokio::process::Child, u16, u16, u16) {
    let (https, http, admin) = (free_port(), free_port(), free_port());
    let child = tokio::process::Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .envs(env.iter().copied())
        .env("PORTCULLIS__SERVER__LISTEN", format!("127.0.0.1:{https}"))
        .env(
            "PORTCULLIS__SERVER__HTTP_LISTEN",
            format!("127.0.0.1:{http}"),
        )
        .env(
            "PORTCULLIS__SERVER__ADMIN_LISTEN",
            format!("127.0.0.1:{admin}"),
        )
        .env("PORTCULLIS__LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, https, http, admin)
}

/// Sends SIGTERM and requires the proxy to drain and exit 0 within 10 s.
async fn exits_zero_on_sigterm(child: &mut tokio::process::Child) {
    signal(child, "TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap()
        .success());
}

fn portcullis(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_config_and_prints_the_route_table() {
    let dir = tempfile::TempDir::new().unwrap();
    example(dir.path());
    let config = dir.path().join("portcullis.toml");
    let (ok, out, err) = portcullis(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(ok, "stderr: {err}");
    assert!(out.contains("2 route(s)"), "{out}");
    assert!(
        out.contains("wiki.example.com") && out.contains("*.example.com"),
        "{out}"
    );
    assert!(out.contains("http://127.0.0.1:3001/v1"), "{out}");
}

#[test]
fn check_names_file_line_and_expectation_for_a_bad_route() {
    let dir = tempfile::TempDir::new().unwrap();
    example(dir.path());
    let routes = dir.path().join("routes.toml");
    let mut text = std::fs::read_to_string(&routes).unwrap();
    text.push_str(
        "\n[[route]]\nauth = \"public\"\nname = \"broken\"\nhost = \"x.example.com\"\nupstream = \"ftp://files\"\n",
    );
    std::fs::write(&routes, text).unwrap();
    let config = dir.path().join("portcullis.toml");
    let (ok, _, err) = portcullis(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("routes.toml"), "{err}");
    assert!(err.contains("\"broken\" (line "), "{err}");
    assert!(
        err.contains("upstream") && err.contains("expected an http:// or https:// URL"),
        "{err}"
    );
}

#[test]
fn environment_overrides_are_applied_and_validated() {
    let dir = tempfile::TempDir::new().unwrap();
    example(dir.path());
    let config = dir.path().join("portcullis.toml");
    let (ok, _, err) = portcullis(
        &["check", "--config", config.to_str().unwrap()],
        &[("PORTCULLIS__SERVER__LISTEN", "not-an-address")],
    );
    assert!(!ok);
    assert!(
        err.contains("server.listen") && err.contains("not-an-address"),
        "{err}"
    );
    let (ok, _, err) = portcullis(
        &["check", "--config", config.to_str().unwrap()],
        &[("PORTCULLIS__SERVER__TYPO", "1")],
    );
    assert!(!ok, "an unknown key from the environment is an error");
    assert!(err.contains("typo"), "{err}");
}

#[test]
fn unknown_keys_in_the_main_file_are_errors() {
    let dir = tempfile::TempDir::new().unwrap();
    example(dir.path());
    let config = dir.path().join("portcullis.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[server]\n", "[server]\nlistne = \"0.0.0.0:1\"\n");
    std::fs::write(&config, text).unwrap();
    let (ok, _, err) = portcullis(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        err.contains("portcullis.toml") && err.contains("listne"),
        "{err}"
    );
}

#[test]
fn version_is_printed() {
    let (ok, out, _) = portcullis(&["--version"], &[]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("portcullis {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn run_serves_the_example_config_and_exits_zero_on_sigterm() {
    let up = Upstream::start("wiki").await;
    let (dir, pki) = example_to(&up);
    let (mut child, https, http, admin) = spawn_run(&dir.path().join("portcullis.toml"));
    let plain = reqwest::Client::new();
    let healthz = format!("http://127.0.0.1:{admin}/healthz");
    assert!(
        eventually(Duration::from_secs(10), || async {
            plain
                .get(&healthz)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "the admin listener answers /healthz"
    );
    let readyz = plain
        .get(format!("http://127.0.0.1:{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    assert_eq!(
        wiki_upstream(&wiki_client(&pki, https), https).await,
        "wiki",
        "an HTTPS request through the proxy reaches the routing file's upstream"
    );
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            "wiki.example.com",
            format!("127.0.0.1:{http}").parse().unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("http://wiki.example.com:{http}/page?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(
        redirect.headers()["location"],
        format!("https://wiki.example.com:{https}/page?x=1")
    );

    exits_zero_on_sigterm(&mut child).await;
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with('{') && l.contains("SIGTERM")),
        "JSON logs mention SIGTERM: {stderr}"
    );
}

#[tokio::test]
async fn run_on_the_single_threaded_runtime_serves_and_stops() {
    let up = Upstream::start("wiki").await;
    let (dir, pki) = example_to(&up);
    let (mut child, https, _, admin) = spawn_run_with(
        &dir.path().join("portcullis.toml"),
        &[("PORTCULLIS__SERVER__WORKER_THREADS", "1")],
    );
    let plain = reqwest::Client::new();
    let readyz = format!("http://127.0.0.1:{admin}/readyz");
    assert!(
        eventually(Duration::from_secs(10), || async {
            plain
                .get(&readyz)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "ready on one thread"
    );
    let client = wiki_client(&pki, https);
    for _ in 0..3 {
        assert_eq!(wiki_upstream(&client, https).await, "wiki");
    }
    exits_zero_on_sigterm(&mut child).await;
}

/// `portcullis health`, the container health check: exit 0 only on a 2xx from the admin
/// listener.
#[tokio::test]
async fn health_exits_by_the_admin_listeners_answer() {
    // No routes: alive (/healthz 200) but not ready (/readyz 503).
    let h = crate::support::Harness::start("").await;
    let health = |address: String, path: &'static str| async move {
        tokio::process::Command::new(BIN)
            .args(["health", "--address", &address, "--path", path])
            .env_remove("PORTCULLIS_HEALTH_ADDRESS")
            .output()
            .await
            .unwrap()
    };
    let alive = health(h.admin.to_string(), "/healthz").await;
    assert!(alive.status.success(), "{alive:?}");
    assert!(String::from_utf8_lossy(&alive.stdout).contains("200 OK"));

    let not_ready = health(h.admin.to_string(), "/readyz").await;
    assert_eq!(not_ready.status.code(), Some(1), "{not_ready:?}");
    assert!(String::from_utf8_lossy(&not_ready.stderr).contains("503"));

    let closed = health(format!("127.0.0.1:{}", free_port()), "/healthz").await;
    assert_eq!(closed.status.code(), Some(1), "{closed:?}");
    assert!(String::from_utf8_lossy(&closed.stderr).contains("cannot connect"));
    h.stop().await.unwrap();
}
