//! The upstream side: pooled hyper-util clients and the call that sends a request through one.
//!
//! One client per distinct TLS trust (`ca_file`) and protocol (`h2c`) is shared by every route
//! that needs it, and survives route reloads so pooled connections are not thrown away. The
//! pool's idle timeout defaults below the 5 s keep-alive of Node.js and Apache, so the proxy
//! closes an idle connection before the upstream does and never writes into a socket the
//! upstream is closing. Bodies are never buffered: the request body streams up and the
//! response body streams back through hyper's back-pressure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::UpstreamConfig;
use crate::error::ProxyError;

/// A pooled client for upstream requests.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Incoming>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}: cannot read CA certificates: {source}", file.display())]
    CaFile {
        file: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no usable CA certificate in the file", file.display())]
    NoCa { file: PathBuf },
    #[error("TLS client set-up: {0}")]
    Tls(rustls::Error),
}

/// The shared set of upstream clients, keyed by what makes them differ.
pub struct Clients {
    config: UpstreamConfig,
    cache: Mutex<HashMap<(Option<PathBuf>, bool), UpstreamClient>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Clients {
    pub fn new(config: UpstreamConfig) -> Clients {
        Clients {
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client trusting the system roots, `upstream.ca_file` and the route's `ca_file`, and
    /// speaking cleartext HTTP/2 when `h2c`.
    pub fn get(&self, ca_file: Option<&Path>, h2c: bool) -> Result<UpstreamClient, ClientError> {
        let key = (ca_file.map(Path::to_path_buf), h2c);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = cache.get(&key) {
            return Ok(client.clone());
        }
        let client = self.build(ca_file, h2c)?;
        cache.insert(key, client.clone());
        Ok(client)
    }

    fn build(&self, ca_file: Option<&Path>, h2c: bool) -> Result<UpstreamClient, ClientError> {
        let mut roots = system_roots().clone();
        for file in self.config.ca_file.as_deref().into_iter().chain(ca_file) {
            add_pem(&mut roots, file)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(ClientError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.config.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Client::builder(TokioExecutor::new())
            .pool_idle_timeout(self.config.pool_idle_timeout)
            .pool_max_idle_per_host(self.config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(h2c)
            .build(https))
    }
}

fn add_pem(roots: &mut RootCertStore, file: &Path) -> Result<(), ClientError> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| ClientError::CaFile {
            file: file.to_owned(),
            source,
        })?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ClientError::NoCa {
            file: file.to_owned(),
        });
    }
    Ok(())
}

/// The platform's trust anchors, read once (honours `SSL_CERT_FILE`).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            tracing::warn!(error = %err, "problem reading system CA certificates");
        }
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        roots
    })
}

/// Sends `req` and waits for the response head within `timeout`.
pub async fn send(
    client: &UpstreamClient,
    req: Request<Incoming>,
    timeout: std::time::Duration,
) -> Result<Response<Incoming>, ProxyError> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(ProxyError::UpstreamTimeout(timeout)),
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if e.is_connect() => Err(ProxyError::UpstreamUnreachable(Box::new(e))),
        Ok(Err(e)) => Err(ProxyError::UpstreamFailed(Box::new(e))),
    }
}
