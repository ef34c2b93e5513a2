//! The optional plain-HTTP listener: every request for a host the proxy serves gets a 308 to
//! the same URL over HTTPS (308 keeps the method and body, unlike 301/302). Hosts without a
//! route get 404, so the listener is not a redirector for arbitrary names.

use std::sync::Arc;

use http::header::{HeaderValue, LOCATION};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::headers::request_id;
use crate::pages::Format;
use crate::proxy::Proxy;
use crate::request::Target;

pub async fn handle(proxy: Arc<Proxy>, https_port: u16, req: Request<Incoming>) -> Response<Body> {
    let id = request_id(req.headers(), false);
    let id = id.to_str().unwrap_or("");
    let format = Format::from_headers(req.headers());
    let target = match Target::of(&req) {
        Ok(t) => t,
        Err(e) => return e.to_response(format, id, proxy.pages()),
    };
    if !proxy.serves_host(&proxy.routes(), &target.host) {
        return ProxyError::NoRoute.to_response(format, id, proxy.pages());
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    // The canonical path: the one the HTTPS listener will route.
    let location = format!(
        "https://{}{port}{}",
        target.host,
        target.path_and_query.as_str()
    );
    let Ok(location) = HeaderValue::from_str(&location) else {
        return ProxyError::BadRequest("The request target is malformed.").to_response(
            format,
            id,
            proxy.pages(),
        );
    };
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(LOCATION, location);
    resp
}
