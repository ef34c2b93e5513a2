//! Test support: a private CA, an upstream test server, and a harness that runs the real
//! proxy (`portcullis::App`) on 127.0.0.1:0 with generated configuration files.

pub mod azure_redis;
pub mod browser;
pub mod redis;
pub mod signin;
pub mod topology;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type BoxBody =
    http_body_util::combinators::BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Names the default test certificate covers.
pub const CERT_NAMES: &[&str] = &[
    "example.test",
    "*.example.test",
    "*.deep.example.test",
    "localhost",
];

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A private certificate authority.
pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Portcullis Test CA");
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and key (PEM) for `names`.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn ca_der(&self) -> rustls_pki_types::CertificateDer<'static> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap()
    }

    /// A rustls client config trusting this CA, offering `alpn`.
    pub fn client_tls(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

/// One GET with `Connection: close` over a new TLS connection to `addr` as `sni`, made with
/// `client`; requires a 200 and returns how the handshake went and the certificate presented.
/// The whole response is read, so the session tickets a server sends after the handshake
/// reach `client`'s store.
pub async fn tls_get(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    sni: &str,
) -> (
    rustls::HandshakeKind,
    rustls_pki_types::CertificateDer<'static>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let conn = tls.get_ref().1;
    let kind = conn.handshake_kind().expect("handshake done");
    (
        kind,
        conn.peer_certificates().unwrap()[0].clone().into_owned(),
    )
}

/// A running proxy.
pub struct Harness {
    pub dir: TempDir,
    pub pki: Arc<Pki>,
    pub https: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    running: Option<portcullis::Running>,
}

/// Extra configuration for a harness.
#[derive(Default)]
pub struct Options {
    /// Lines added to `[server]`.
    pub server: String,
    /// Lines added to `[tls]`.
    pub tls: String,
    /// Whole extra sections appended to the main file.
    pub extra: String,
    /// Extra certificates to generate before start: file stem and names; written as
    /// `{stem}.pem` and `{stem}-key.pem` in the harness directory.
    pub certs: Vec<(&'static str, Vec<&'static str>)>,
    /// The CA to use (so other servers in the test can share it); a new one if `None`.
    pub pki: Option<Arc<Pki>>,
    /// Extra files to write into the harness directory before start.
    pub files: Vec<(String, String)>,
    /// Where `routes.toml` links to: the routing file is written there and `routes.toml` is a
    /// symbolic link to it from the start.
    pub routes_link: Option<PathBuf>,
}

impl Harness {
    pub async fn start(routes: &str) -> Harness {
        Harness::start_with(routes, Options::default()).await
    }

    pub async fn start_with(routes: &str, options: Options) -> Harness {
        init();
        let dir = TempDir::new().unwrap();
        let pki = options.pki.clone().unwrap_or_else(|| Arc::new(Pki::new()));
        for (name, content) in &options.files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let (cert, key) = pki.leaf(CERT_NAMES);
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
        match &options.routes_link {
            Some(target) => {
                std::fs::write(target, routes).unwrap();
                std::os::unix::fs::symlink(target, dir.path().join("routes.toml")).unwrap();
            }
            None => std::fs::write(dir.path().join("routes.toml"), routes).unwrap(),
        }
        for (stem, names) in &options.certs {
            let (cert, key) = pki.leaf(names);
            std::fs::write(dir.path().join(format!("{stem}.pem")), cert).unwrap();
            std::fs::write(dir.path().join(format!("{stem}-key.pem")), key).unwrap();
        }
        let https = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (https_addr, http_addr, admin_addr) = (
            https.local_addr().unwrap(),
            http.local_addr().unwrap(),
            admin.local_addr().unwrap(),
        );
        // 5 s unless the test sets its own.
        let grace = if options.server.contains("shutdown_grace") {
            ""
        } else {
            "shutdown_grace = \"5s\"\n"
        };
        let main = format!(
            "[server]\nlisten = \"{https_addr}\"\nhttp_listen = \"{http_addr}\"\nadmin_listen = \"{admin_addr}\"\n\
             {grace}{server}\n\
             [tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n{tls}\n\
             [routes]\nfile = \"routes.toml\"\n\n[log]\nlevel = \"warn\"\n\n{extra}\n",
            server = options.server,
            tls = options.tls,
            extra = options.extra,
        );
        std::fs::write(dir.path().join("portcullis.toml"), main).unwrap();
        let config = portcullis::config::load(&dir.path().join("portcullis.toml")).unwrap();
        let routes =
            portcullis::config::routes::load(config.routes_file.as_deref().unwrap()).unwrap();
        let listeners = portcullis::Listeners {
            https,
            http: Some(http),
            admin: Some(admin),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let app = portcullis::App::build(config, routes).await.unwrap();
        let running = app.serve(listeners, async move {
            let _ = stopped.await;
        });
        Harness {
            dir,
            pki,
            https: https_addr,
            http: http_addr,
            admin: admin_addr,
            stop: Some(stop),
            running: Some(running),
        }
    }

    fn running(&self) -> &portcullis::Running {
        self.running.as_ref().expect("running")
    }

    /// Waits (up to 15 s) until every route can be served: the identity provider's metadata
    /// has loaded where `[oidc]` is configured.
    pub async fn ready(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(15), self.running().ready())
            .await
            .unwrap_or(false)
    }

    /// Reloads the routing file and certificates now, as SIGHUP does (without signalling the
    /// whole test process, where every other test's proxy would reload too).
    pub async fn reload(&self) -> portcullis::reload::Reloaded {
        self.running().reload().await.expect("the proxy is running")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `https://host:port/path` on the proxy.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https.port())
    }

    /// An HTTP client that trusts the test CA and resolves `hosts` to the proxy.
    pub fn client(&self, hosts: &[&str]) -> reqwest::Client {
        self.client_builder(hosts).build().unwrap()
    }

    pub fn client_builder(&self, hosts: &[&str]) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pki.ca_pem.as_bytes()).unwrap(),
            )
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        for h in hosts {
            b = b.resolve(h, self.https);
        }
        b
    }

    /// Shuts down (as on SIGTERM) and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), portcullis::RunError> {
        let task = self.begin_stop();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("run returns")
            .expect("run task")
    }

    /// Begins shutdown without waiting; returns the task to await.
    pub fn begin_stop(&mut self) -> JoinHandle<Result<(), portcullis::RunError>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::spawn(self.running.take().expect("running").stopped())
    }

    /// Sends one raw HTTP/1.1 request over TLS and returns everything the proxy wrote back.
    pub async fn raw_h1(&self, sni: &str, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(self.https).await.unwrap();
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(self.pki.client_tls(&[b"http/1.1"])));
        let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Completes a TLS handshake with `sni` and returns the certificate the proxy presented.
    pub async fn presented_cert(
        &self,
        sni: &str,
    ) -> Result<rustls_pki_types::CertificateDer<'static>, std::io::Error> {
        let tcp = tokio::net::TcpStream::connect(self.https).await?;
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(self.pki.client_tls(&[b"http/1.1"])));
        let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        let tls = connector.connect(name, tcp).await?;
        Ok(tls.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned())
    }

    /// An HTTP/2 connection to the proxy (ALPN h2), for tests that need frames reqwest hides.
    pub async fn h2(&self, sni: &str) -> hyper::client::conn::http2::SendRequest<BoxBody> {
        let tcp = tokio::net::TcpStream::connect(self.https).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.pki.client_tls(&[b"h2"])));
        let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        send
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn full(b: impl Into<Bytes>) -> BoxBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// A body of `total` bytes produced in 64 KiB chunks, never held in memory at once.
pub fn generated(total: u64) -> BoxBody {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(chunk.len() as u64);
            let piece = chunk.slice(..usize::try_from(n).unwrap());
            Some((
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(piece)),
                sent + n,
            ))
        }
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// The JSON an echo upstream returns.
pub async fn echo_json(resp: reqwest::Response) -> serde_json::Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not echo JSON: {text}"))
}

/// Values of header `name` as the upstream received them (all copies).
pub fn seen(echo: &serde_json::Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// A loopback port nothing listens on (for servers started as separate processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 50 ms until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub use crate::upstream::Upstream;
