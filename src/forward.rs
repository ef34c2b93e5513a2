//! The upstream side: connection pools and the call that sends a request through one.
//!
//! One pool per upstream (scheme and authority), TLS trust (`ca_file`) and protocol (`h2c`),
//! shared by every route that names it; pools survive route reloads so pooled connections
//! are not thrown away. hyper-util's connector dials (TCP, then TLS with ALPN); hyper's
//! connection API speaks HTTP; `pool.rs` keeps the connections. The pool's idle timeout
//! defaults below the 5 s keep-alive of Node.js and Apache, so the proxy closes an idle
//! connection before the upstream does and never writes into a socket the upstream is
//! closing. Bodies are never buffered: the request body streams up and the response body
//! streams back through hyper's back-pressure.

mod body;
mod pool;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

pub use self::body::UpstreamBody;
pub use self::pool::Pool;
use crate::config::UpstreamConfig;
use crate::error::ProxyError;

/// The connection pool a route sends through.
pub type UpstreamClient = Arc<Pool>;

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
    #[error("upstream {0}: {1}")]
    Target(String, http::Error),
}

/// The shared set of upstream pools, keyed by what makes them differ.
pub struct Clients {
    config: UpstreamConfig,
    /// One TLS connector per trust (`ca_file`).
    connectors: Mutex<HashMap<Option<PathBuf>, HttpsConnector<HttpConnector>>>,
    pools: Mutex<HashMap<PoolKey, UpstreamClient>>,
}

type PoolKey = (Option<PathBuf>, bool, Scheme, Authority);

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
            connectors: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The pool for `scheme://authority`, trusting the system roots, `upstream.ca_file` and
    /// the route's `ca_file`, and speaking cleartext HTTP/2 when `h2c`.
    pub fn get(
        &self,
        ca_file: Option<&Path>,
        h2c: bool,
        scheme: &Scheme,
        authority: &Authority,
    ) -> Result<UpstreamClient, ClientError> {
        let key = (
            ca_file.map(Path::to_path_buf),
            h2c,
            scheme.clone(),
            authority.clone(),
        );
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let settings = pool::Settings {
            connector: self.connector(ca_file)?,
            h2c,
            idle_timeout: self.config.pool_idle_timeout,
            max_idle: self.config.pool_max_idle_per_host,
        };
        let target = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| ClientError::Target(format!("{scheme}://{authority}"), e))?;
        let pool = Pool::new(settings, target)
            .map_err(|e| ClientError::Target(format!("{scheme}://{authority}"), e))?;
        let pool = Arc::new(pool);
        pools.insert(key, pool.clone());
        Ok(pool)
    }

    fn connector(
        &self,
        ca_file: Option<&Path>,
    ) -> Result<HttpsConnector<HttpConnector>, ClientError> {
        let key = ca_file.map(Path::to_path_buf);
        let mut connectors = self.connectors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = connectors.get(&key) {
            return Ok(c.clone());
        }
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
        connectors.insert(key, https.clone());
        Ok(https)
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

/// Sends `req` and waits for the response head within `timeout`. The pool's own future, not
/// one wrapped around it: each layer would hold the request again and copy the whole future.
pub fn send(
    pool: &UpstreamClient,
    req: Request<Incoming>,
    timeout: std::time::Duration,
) -> impl std::future::Future<Output = Result<Response<UpstreamBody>, ProxyError>> + '_ {
    pool.request(req, timeout)
}
