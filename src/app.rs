//! The composition root: [`App::build`] assembles everything the request path needs from a
//! validated configuration and route list (upstream clients, the route table, sign-in with its
//! store, secrets and provider client, certificates, metrics); [`App::serve`] starts the
//! listeners and background tasks and returns a [`Running`] handle.
//!
//! `portcullis::run` (the binary) reads the routing file and calls both; tests, the demo and
//! the benchmark call them directly, with configuration built in code (`Config::new`), and
//! wait on [`Running::ready`] instead of polling `/readyz`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::Auth;
use crate::config::{Config, Routing};
use crate::forward::Clients;
use crate::proxy::Proxy;
use crate::reload::{self, Reloaded};
use crate::route::RouteTable;
use crate::tls::CertResolver;
use crate::{admin, auth, config, metrics, redirect, server, tls, Listeners, RunError};

/// Everything assembled, nothing serving yet.
pub struct App {
    config: Config,
    proxy: Arc<Proxy>,
    auth: Option<Arc<Auth>>,
    certs: Arc<CertResolver>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("listen", &self.config.server.listen)
            .field("sign_in", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Assembles the proxy. `routes` are validated: the routing file (`config::routes::load`)
    /// or specs built in code. Refuses protected routes without `[oidc]`.
    pub async fn build(config: Config, routes: impl Into<Routing>) -> Result<App, RunError> {
        metrics::install();
        let routes = routes.into();
        let routes_file = config.routes_file.clone().unwrap_or_default();
        config::routes::check_against_oidc(&routes.routes, &routes_file, config.oidc.as_ref())?;
        config::routes::check_against_assertion(
            &routes.routes,
            &routes_file,
            config.assertion.is_some(),
        )?;
        let clients = Clients::new(config.upstream.clone());
        let table = RouteTable::build(routes, &clients)?;
        let auth = auth::setup::build(&config).await?;
        let assertions = match (&config.assertion, &auth) {
            (Some(a), Some(auth)) => {
                Some(crate::assertion::Assertions::new(a.clone(), auth.sessions().clone()).await?)
            }
            _ => None,
        };
        let proxy = Arc::new(
            Proxy::new(
                table,
                clients,
                config.server.trusted_proxies.clone(),
                auth.clone(),
                config.telemetry.otlp_endpoint.is_some(),
                config.pages.clone(),
            )
            .with_assertions(assertions),
        );
        let certs = Arc::new(CertResolver::new(config.tls.clone())?);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(
            certs.clone(),
            config.tls.session_tickets,
        )?));
        Ok(App {
            config,
            proxy,
            auth,
            certs,
            acceptor,
        })
    }

    /// Serves on `listeners` until `shutdown` completes, then stops accepting and drains open
    /// connections (up to `server.shutdown_grace`).
    pub fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Running {
        let App {
            config,
            proxy,
            auth,
            certs,
            acceptor,
        } = self;
        let (stop_tx, stop) = watch::channel(false);
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let addr = |l: &tokio::net::TcpListener| l.local_addr().ok();
        let https = addr(&listeners.https);
        let admin_addr = listeners.admin.as_ref().and_then(addr);

        let mut tasks = tokio::task::JoinSet::new();
        if let Some(auth) = &auth {
            tasks.spawn(auth.provider().clone().run(stop.clone()));
        }
        if let Some(a) = proxy.assertions() {
            tasks.spawn(a.clone().run(stop.clone()));
        }
        tasks.spawn(reload::run(
            proxy.clone(),
            config.routes_file.clone(),
            certs,
            reload_rx,
            stop.clone(),
        ));
        if let Some(listener) = listeners.admin {
            let p = proxy.clone();
            let token = config.server.admin_token_file.clone().map(Arc::new);
            let requires_store = config.server.ready_requires_store;
            let handler =
                move |_, req| admin::handle(p.clone(), token.clone(), requires_store, req);
            tasks.spawn(server::serve_plain(
                "admin",
                listener,
                config.server.clone(),
                stop.clone(),
                handler,
            ));
        }
        if let Some(listener) = listeners.http {
            let p = proxy.clone();
            let port = config.server.https_port;
            let handler = move |_, req| redirect::handle(p.clone(), port, req);
            tasks.spawn(server::serve_plain(
                "http",
                listener,
                config.server.clone(),
                stop.clone(),
                handler,
            ));
        }
        tasks.spawn(server::serve_https(
            listeners.https,
            acceptor,
            proxy,
            config.server.clone(),
            stop,
        ));
        tracing::info!(listen = %config.server.listen, "portcullis is serving");

        let grace = config.server.shutdown_grace;
        let (stopped_tx, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            shutdown.await;
            tracing::info!(?grace, "shutting down: no new connections, draining");
            let _ = stop_tx.send(true);
            while tasks.join_next().await.is_some() {}
            tracing::info!("stopped");
            let _ = stopped_tx.send(true);
        });
        Running {
            auth,
            reload: reload_tx,
            stopped,
            task,
            https,
            admin: admin_addr,
        }
    }
}

/// A serving proxy.
#[derive(Debug)]
pub struct Running {
    auth: Option<Arc<Auth>>,
    reload: mpsc::Sender<oneshot::Sender<Reloaded>>,
    stopped: watch::Receiver<bool>,
    task: JoinHandle<()>,
    https: Option<SocketAddr>,
    admin: Option<SocketAddr>,
}

impl Running {
    /// Resolves once every route can be served: at once without `[oidc]`, otherwise when the
    /// identity provider's metadata and keys have loaded. `false` if the proxy stopped first.
    pub async fn ready(&self) -> bool {
        let mut stopped = self.stopped.clone();
        let Some(auth) = &self.auth else {
            return !*stopped.borrow();
        };
        tokio::select! {
            _ = auth.provider().wait_ready() => true,
            _ = stopped.wait_for(|s| *s) => false,
        }
    }

    /// Re-reads the routing file and the certificates now, as SIGHUP does, and reports what
    /// each reload did. `None` if the proxy has stopped.
    pub async fn reload(&self) -> Option<Reloaded> {
        let (tx, rx) = oneshot::channel();
        self.reload.send(tx).await.ok()?;
        rx.await.ok()
    }

    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https
    }

    /// The admin listener's address, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Resolves when shutdown has completed (every connection drained or cut at the grace).
    pub async fn stopped(self) -> Result<(), RunError> {
        self.task.await.map_err(|e| RunError::Task(e.to_string()))
    }
}
