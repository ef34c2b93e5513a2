//! Benchmark reference: the least a proxy built on Portcullis's required stack can do.
//!
//! ```text
//! bench-floor LISTEN_ADDR CERT_PEM KEY_PEM UPSTREAM_ADDR
//! ```
//!
//! It terminates TLS (tokio-rustls, ring, ALPN h2 and http/1.1), serves HTTP/1.1 and HTTP/2
//! with hyper-util's auto builder, and sends every request, as it came, to a plain-HTTP/1.1
//! upstream through hyper's client connections, streaming the response back. Nothing else: no
//! routing, no header rules, no identity, no access log, no metrics, no limits. Each downstream
//! connection keeps its own idle upstream connections (no shared pool, no locks across
//! connections), and the runtime is one current thread, as Portcullis's is on one CPU.
//!
//! `bench/run.sh` runs it beside nginx and Portcullis when `FLOOR_BIN` names it: its ratio to
//! nginx is the ceiling that hyper, tokio and rustls allow on this machine, and Portcullis's
//! ratio to it is the cost of everything Portcullis does beyond forwarding.
//!
//! Built as an example so it is never part of the `portcullis` command.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, cert, key, upstream] = args.as_slice() else {
        return Err("usage: bench-floor LISTEN_ADDR CERT_PEM KEY_PEM UPSTREAM_ADDR".into());
    };
    let listen: SocketAddr = listen.parse()?;
    let upstream: SocketAddr = upstream.parse()?;
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(listen).await?;
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::task::spawn_local(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let idle: Rc<RefCell<Vec<http1::SendRequest<Incoming>>>> = Rc::default();
                let service = service_fn(move |req| forward(idle.clone(), upstream, req));
                let _ = auto::Builder::new(LocalExec)
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}

/// Runs hyper's per-stream HTTP/2 tasks on this thread (the service holds `Rc`s).
#[derive(Clone, Copy)]
struct LocalExec;

impl<F: Future + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// Sends `req` to the upstream on a ready connection of this downstream connection, or a new
/// one. The connection stays in the list while its response streams; it is ready again, and
/// taken by a later request, once that response has ended.
async fn forward(
    idle: Rc<RefCell<Vec<http1::SendRequest<Incoming>>>>,
    upstream: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, Error> {
    let taken = {
        let mut list = idle.borrow_mut();
        list.retain(|s| !s.is_closed());
        let ready = list.iter().position(|s| s.is_ready());
        ready.map(|i| list.swap_remove(i))
    };
    let mut sender = match taken {
        Some(s) => s,
        None => {
            let tcp = TcpStream::connect(upstream).await?;
            tcp.set_nodelay(true)?;
            let (mut sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
            tokio::task::spawn_local(conn);
            sender.ready().await?;
            sender
        }
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = Uri::try_from(path)?;
    *req.version_mut() = http::Version::HTTP_11;
    if !req.headers().contains_key(http::header::HOST) {
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("bench.local"),
        );
    }
    let resp = sender.send_request(req);
    idle.borrow_mut().push(sender);
    Ok(resp.await?)
}
