//! The demo's upstream: an HTML page listing the request headers it received, identity
//! headers first, so a newcomer sees exactly what an application behind Portcullis gets.

use std::net::SocketAddr;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, Body};
use crate::config::ServerConfig;
use crate::pages::escape;

/// The running app; dropping it stops it.
pub struct Whoami {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for Whoami {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Serves the page on 127.0.0.1 (a free port) through the proxy's own accept loop and limits.
pub async fn start(limits: ServerConfig) -> std::io::Result<Whoami> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let handler = |_, req: Request<Incoming>| async move { page(&req) };
    tokio::spawn(crate::server::serve_plain(
        "whoami", listener, limits, stopped, handler,
    ));
    Ok(Whoami { addr, stop })
}

fn is_identity(name: &str) -> bool {
    name.starts_with("x-auth-request-") || name.starts_with("x-ms-client-principal")
}

fn page(req: &Request<Incoming>) -> Response<Body> {
    let mut rows: Vec<(bool, String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                is_identity(k.as_str()),
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let name = req
        .headers()
        .get("x-auth-request-name")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "someone".into());
    let table: String = rows
        .iter()
        .map(|(id, k, v)| {
            format!(
                "<tr{}><th>{}</th><td>{}</td></tr>",
                if *id { " class=\"id\"" } else { "" },
                escape(k),
                escape(v)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>whoami</title>\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>\
body{{font:15px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1f2328;margin:0}}\
main{{max-width:60rem;margin:4vh auto;background:#fff;border-radius:8px;padding:2rem 2.5rem;box-shadow:0 1px 3px #0002}}\
table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee;vertical-align:top}}\
th{{font-family:ui-monospace,monospace;font-weight:600;white-space:nowrap}}td{{word-break:break-all;font-family:ui-monospace,monospace}}\
tr.id{{background:#eef6ff}}nav a{{margin-right:1rem}}\
</style></head><body><main><h1>Hello, {name}</h1>\
<p>This page is the demo's upstream application. It lists every header Portcullis sent it; the \
highlighted ones carry your identity (<code>{path}</code>).</p>\
<nav><a href=\"/\">Home</a><a href=\"/admin\">Admins only</a><a href=\"/.auth/me\">/.auth/me</a>\
<a href=\"/.auth/logout\">Sign out</a></nav>\
<table>{table}</table></main></body></html>",
        name = escape(&name),
        path = escape(req.uri().path()),
    );
    let mut resp = Response::new(body::full(html));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}
