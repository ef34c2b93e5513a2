//! Live reload of the routing file and the TLS certificates, on file change and on SIGHUP.
//!
//! A reload parses and validates the whole routing file before anything changes; only a
//! complete, valid table is swapped in (one atomic pointer store), so requests see either the
//! old table or the new one. In-flight requests and open WebSockets hold their own `Arc<Route>`
//! and are not disturbed. An invalid edit is logged with file and line, and the old table
//! keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::config::routes;
use crate::proxy::Proxy;
use crate::route::RouteTable;
use crate::tls::CertResolver;

/// Pause after a change before reading, so a burst of writes is read once.
const SETTLE: Duration = Duration::from_millis(150);

/// Why a routing-file reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Client(#[from] crate::forward::ClientError),
}

/// Reads, validates and swaps in the routing file. Returns the number of routes.
pub fn reload_routes(proxy: &Proxy, file: &std::path::Path) -> Result<usize, ReloadError> {
    let routing = routes::load(file)?;
    let oidc = proxy.auth().map(|a| &a.provider().config);
    routes::check_against_oidc(&routing.routes, file, oidc)?;
    routes::check_against_assertion(&routing.routes, file, proxy.assertions().is_some())?;
    let table = RouteTable::build(routing, proxy.clients())?;
    let n = table.len();
    proxy.set_routes(table);
    Ok(n)
}

/// What one reload did, for [`crate::Running::reload`]: the number of routes now serving (or
/// why the routing file was refused, the old routes serving on), and the same for the
/// certificates. `None`: there was nothing to reload (routes given in code, not from a file).
#[derive(Debug)]
pub struct Reloaded {
    pub routes: Option<Result<usize, ReloadError>>,
    pub certificates: Result<(), crate::tls::TlsError>,
}

/// Reloads on file changes, SIGHUP and requests from `requests`, until `shutdown` flips.
pub async fn run(
    proxy: Arc<Proxy>,
    routes_file: Option<PathBuf>,
    certs: Arc<CertResolver>,
    mut requests: mpsc::Receiver<oneshot::Sender<Reloaded>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut files = certs.files();
    files.extend(routes_file.clone());
    let (watcher, mut changes) = match crate::watch::watch(&files) {
        Ok((w, rx)) => (Some(w), rx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch configuration files; reload on SIGHUP only");
            let (_tx, rx) = mpsc::channel(1);
            (None, rx)
        }
    };
    let _keep_watching = watcher;
    let mut hangup = sighup();
    let read_routes = || routes_file.as_deref().and_then(|f| std::fs::read(f).ok());
    let mut last = read_routes();
    let mut last_certs = read_all(&certs.files());
    loop {
        let (forced, reply) = tokio::select! {
            _ = shutdown.changed() => return,
            Some(()) = changes.recv() => (false, None),
            Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reloading configuration");
                (true, None)
            }
            Some(reply) = requests.recv() => (true, Some(reply)),
        };
        if reply.is_none() {
            tokio::time::sleep(SETTLE).await;
        }
        while changes.try_recv().is_ok() {}
        let now = read_routes();
        let routes = match &routes_file {
            Some(file) if forced || now != last => Some(match reload_routes(&proxy, file) {
                Ok(n) => {
                    last = now;
                    tracing::info!(file = %file.display(), routes = n, "routing file reloaded");
                    reloaded(true, "routes");
                    Ok(n)
                }
                Err(e) => {
                    tracing::error!(error = %e, "routing file rejected; the previous routes keep serving");
                    reloaded(false, "routes");
                    Err(e)
                }
            }),
            _ => None,
        };
        let now_certs = read_all(&certs.files());
        let mut certificates = Ok(());
        if forced || now_certs != last_certs {
            certificates = certs.reload();
            match &certificates {
                Ok(()) => {
                    last_certs = now_certs;
                    tracing::info!("TLS certificates reloaded");
                    reloaded(true, "certificates");
                }
                Err(e) => {
                    tracing::error!(error = %e, "certificates rejected; the previous certificates keep serving");
                    reloaded(false, "certificates");
                }
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(Reloaded {
                routes,
                certificates,
            });
        }
    }
}

fn reloaded(ok: bool, what: &'static str) {
    use crate::audit::{record, Event};
    crate::metrics::reload(ok);
    let event = if ok {
        Event::ConfigReload
    } else {
        Event::ConfigReloadFailed
    };
    record(crate::audit::Scope::NONE, event, "", "", what);
}

fn read_all(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

fn sighup() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            None
        }
    }
}
