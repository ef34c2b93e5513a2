//! The `portcullis` command: `run`, `check`, `health`, `demo`, `--version`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// mimalloc: the request path allocates many small, short-lived buffers (headers, TLS records)
/// across worker threads, where glibc's malloc spent ~5% of the proxy's CPU in benchmarks.
/// Built with `no_thp`: mimalloc otherwise asks for transparent huge pages, and each of the
/// few 2 MiB regions touched at start-up then counts whole (idle RSS 35 MiB instead of 22 MiB
/// with a Redis store), for no measured gain in throughput.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Identity-aware reverse proxy for Microsoft Entra ID"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: terminate TLS and proxy requests by the routing file.
    Run {
        /// The main configuration file.
        #[arg(
            long,
            short,
            default_value = "config/portcullis.toml",
            env = "PORTCULLIS_CONFIG"
        )]
        config: PathBuf,
    },
    /// Try it on localhost: a stand-in Entra ID with demo users, a "whoami" app and the proxy
    /// in front of it, in one process. Not for production.
    Demo {
        /// HTTPS port on 127.0.0.1 (open https://localhost:PORT/).
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Admin port on 127.0.0.1 (/metrics, /readyz).
        #[arg(long, default_value_t = 9090)]
        admin_port: u16,
    },
    /// Probe the admin listener (the container health check): exit 0 when `GET PATH` answers
    /// 2xx, 1 otherwise.
    Health {
        /// The admin listener, `host:port` (`server.admin_listen`; 0.0.0.0 is reached on
        /// 127.0.0.1).
        #[arg(
            long,
            default_value = "127.0.0.1:9090",
            env = "PORTCULLIS_HEALTH_ADDRESS"
        )]
        address: String,
        /// `/healthz` (the process answers) or `/readyz` (ready to serve).
        #[arg(long, default_value = "/healthz")]
        path: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Validate the configuration and the routing file, and print the route table.
    Check {
        /// The main configuration file.
        #[arg(
            long,
            short,
            default_value = "config/portcullis.toml",
            env = "PORTCULLIS_CONFIG"
        )]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Health {
            address,
            path,
            timeout,
        } => health(&address, &path, timeout),
        Command::Demo { port, admin_port } => demo(port, admin_port),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = portcullis::config::load(path)?;
    // Dropped after the runtime, outside any async context: flushes the last spans.
    let _traces = portcullis::telemetry::init_with(&config.log, &config.telemetry);
    let runtime = runtime(config.server.worker_threads)?;
    runtime.block_on(async {
        let listeners = portcullis::Listeners::bind(&config).await?;
        portcullis::run(config, listeners, shutdown_signal()).await?;
        Ok(())
    })
}

/// The async runtime: `threads` workers (0: one per CPU the process may use, which honours
/// CPU affinity and cgroup quotas). With one, the single-threaded runtime: no work-stealing
/// bookkeeping, measurably faster on one core (bench/README.md).
fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(not(feature = "demo"))]
fn demo(_port: u16, _admin_port: u16) -> anyhow::Result<()> {
    anyhow::bail!(
        "this build of portcullis has no demo (it was built without the `demo` feature, as the \
         container image is); from a clone of the repository, run `cargo run --release -- demo`"
    )
}

#[cfg(feature = "demo")]
fn demo(port: u16, admin_port: u16) -> anyhow::Result<()> {
    portcullis::telemetry::init(&portcullis::config::LogConfig {
        format: portcullis::config::LogFormat::Text,
        level: "info".to_owned(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = portcullis::demo::DemoOptions { port, admin_port };
    runtime.block_on(portcullis::demo::run(options, shutdown_signal(), |url| {
        let users: Vec<String> = portcullis::demo::users()
            .iter()
            .map(|u| {
                let groups = if u.groups.iter().any(|g| g == portcullis::demo::GROUP_ADMINS) {
                    "Staff, Admins"
                } else if u.groups.is_empty() {
                    "no groups"
                } else {
                    "Staff"
                };
                format!("    {:<22} {:<14} ({groups})", u.username, u.name)
            })
            .collect();
        println!(
            "\nPortcullis demo is running.\n\n  Open {url}\n  (a certificate made just now for localhost: accept the browser's warning)\n\n\
             Sign in as one of:\n{}\n\n  {url} is open to every demo user; {url}admin only to the Admins group.\n\
             Metrics: http://127.0.0.1:{admin_port}/metrics\n\nCtrl-C stops the demo.\n",
            users.join("\n")
        );
    }))?;
    Ok(())
}

fn health(address: &str, path: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status = runtime.block_on(portcullis::admin::probe::probe(address, path, timeout))?;
    if !status.is_success() {
        anyhow::bail!("GET http://{address}{path}: {status}");
    }
    println!("GET http://{address}{path}: {status}");
    Ok(())
}

fn check(path: &Path) -> anyhow::Result<()> {
    let config = portcullis::config::load(path)?;
    portcullis::tls::CertResolver::new(config.tls.clone())?;
    let routes_file = config
        .routes_file
        .clone()
        .context("the configuration names no routing file")?;
    let routes = portcullis::config::routes::load(&routes_file)?;
    portcullis::config::routes::check_against_oidc(
        &routes.routes,
        &routes_file,
        config.oidc.as_ref(),
    )?;
    portcullis::config::routes::check_against_assertion(
        &routes.routes,
        &routes_file,
        config.assertion.is_some(),
    )?;
    println!("{}: ok", config.file.display());
    match &config.oidc {
        Some(o) => println!(
            "sign-in: {} ({}, client {}, {}{}), sessions in {}",
            o.issuer,
            match o.provider {
                portcullis::config::auth::Provider::Entra => "Entra ID",
                portcullis::config::auth::Provider::Other => "another OpenID Connect provider",
            },
            o.client_id,
            o.credential.as_str(),
            if o.multi_tenant {
                format!(", {} allowed tenant(s)", o.allowed_tenants.len())
            } else {
                String::new()
            },
            config.session.store.as_str()
        ),
        None => println!("sign-in: not configured ([oidc] absent): public routes only"),
    }
    println!(
        "{}: {} route(s)",
        routes_file.display(),
        routes.routes.len()
    );
    println!();
    println!(
        "{:<16} {:<24} {:<16} {:<8} UPSTREAM",
        "NAME", "HOST", "PATH", "AUTH"
    );
    for r in &routes.routes {
        println!(
            "{:<16} {:<24} {:<16} {:<8} {}",
            r.name,
            r.host.to_string(),
            r.path_prefix,
            r.auth.as_str(),
            r.upstream
        );
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
