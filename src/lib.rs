//! Portcullis: an identity-aware reverse proxy for Microsoft Entra ID.
//!
//! # Layout
//!
//! - `main.rs`: the CLI (`run`, `check`, `health`, `demo`); parses arguments, sets up logging,
//!   calls [`run`].
//! - [`app`]: the composition root: [`App::build`] assembles, [`App::serve`] runs.
//! - [`config`]: the main file and the routing file, raw → validated.
//! - [`server`]: listeners, TLS handshakes, HTTP/1.1 + HTTP/2 connections, limits, drain.
//! - [`tls`]: certificates, SNI and certificate reload.
//! - [`proxy`]: **the request path**, one function chaining the stages below.
//!   - [`context`]: the per-request context the stages share.
//!   - [`request`]: host and path of the downstream request.
//!   - [`route`]: the live route table.
//!   - [`auth`]: sign-in, sessions and bearer tokens as a stage; the `/.auth/*` endpoints.
//!   - [`policy`]: per-route authorization on `oid`, `tid`, groups, roles and claims.
//!   - [`headers`]: header hygiene (hop-by-hop, `X-Forwarded-*`, request ID) and identity
//!     headers (stripped from clients, injected for the upstream).
//!   - [`forward`]: pooled upstream clients.
//!   - [`upgrade`]: WebSocket tunnelling.
//!   - [`access_log`]: one event per request.
//! - [`error`]: the error→status table and the causes it reads (a leaf); [`pages`] renders
//!   answers as HTML, JSON or text.
//! - Sign-in parts: [`oidc`] (discovery, keys, token endpoint, Graph), [`session`] (sessions,
//!   refresh), [`store`] (memory and Redis), [`seal`] (sealed values), [`identity`] (claims).
//! - [`reload`] and [`watch`]: live reload of routes and certificates.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` (and `portcullis health`, their probe);
//!   [`redirect`]: plain HTTP → HTTPS.
//! - Observability: [`metrics`], [`audit`] (the audit log), [`telemetry`] (logs, OTLP),
//!   [`trace`] (request spans, W3C `traceparent`).
//! - [`body`]: the body type; [`primitives`]: clock, random tokens, digests.
//! - `demo` (feature `demo`): `portcullis demo`, the stand-in Entra ID and a whoami app.
//!
//! `docs/architecture.md` draws the request path and the module graph.

pub mod access_log;
pub mod admin;
pub mod app;
pub mod assertion;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod context;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod forward;
pub mod headers;
pub mod identity;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod policy;
pub mod primitives;
pub mod proxy;
pub mod redirect;
pub mod reload;
pub mod request;
pub mod route;
pub mod seal;
pub mod server;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod upgrade;
pub mod watch;

use std::future::Future;

use tokio::net::TcpListener;

pub use crate::app::{App, Running};
use crate::config::Config;

/// The sockets the proxy serves on, bound by the caller (tests bind port 0).
#[derive(Debug)]
pub struct Listeners {
    pub https: TcpListener,
    pub http: Option<TcpListener>,
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses in the configuration.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let s = &config.server;
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        };
        Ok(Listeners {
            https: bind(s.listen).await?,
            http: match s.http_listen {
                Some(a) => Some(bind(a).await?),
                None => None,
            },
            admin: match s.admin_listen {
                Some(a) => Some(bind(a).await?),
                None => None,
            },
        })
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Client(#[from] forward::ClientError),
    #[error("TLS set-up: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(transparent)]
    SignIn(#[from] auth::setup::SetupError),
    #[error("identity assertions: {0}")]
    Assertion(#[from] assertion::AssertionError),
    #[error("the serving task failed: {0}")]
    Task(String),
}

/// Runs the proxy on `listeners` until `shutdown` completes, then drains open connections
/// (up to `server.shutdown_grace`) and returns. Routes come from `config.routes_file`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let routes = match &config.routes_file {
        Some(file) => config::routes::load(file)?,
        None => config::routes::Routing::default(),
    };
    App::build(config, routes)
        .await?
        .serve(listeners, shutdown)
        .stopped()
        .await
}
