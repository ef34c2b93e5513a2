//! A browser-shaped HTTP client for sign-in tests: a cookie jar per host that honours the
//! attributes a browser would (`Secure`, `Max-Age=0` deletes, `__Host-` rules), `Accept:
//! text/html` navigations, and redirects followed one hop at a time so tests can look at each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use url::Url;

/// One response, with what the jar learned from it.
#[derive(Debug)]
pub struct Hop {
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Hop {
    pub fn location(&self) -> Option<Url> {
        let l = self.headers.get(LOCATION)?.to_str().ok()?;
        self.url.join(l).ok()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }
}

/// A cookie as the jar keeps it (attributes are checked when it is set).
#[derive(Debug, Clone)]
pub struct Cookie {
    pub value: String,
}

pub struct Browser {
    client: reqwest::Client,
    /// host → name → cookie
    pub jar: HashMap<String, HashMap<String, Cookie>>,
    pub extra_headers: HeaderMap,
}

impl Browser {
    /// `hosts` resolve to `proxy`; everything else (the stand-in on 127.0.0.1) directly.
    pub fn new(ca_pem: &str, proxy: SocketAddr, hosts: &[&str]) -> Browser {
        let b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap());
        Browser::with(b, proxy, hosts)
    }

    /// As a user who clicked through the warning for a self-signed certificate
    /// (`portcullis demo`).
    pub fn accepting_any_certificate(proxy: SocketAddr, hosts: &[&str]) -> Browser {
        let b = reqwest::Client::builder()
            .use_rustls_tls()
            .danger_accept_invalid_certs(true);
        Browser::with(b, proxy, hosts)
    }

    fn with(b: reqwest::ClientBuilder, proxy: SocketAddr, hosts: &[&str]) -> Browser {
        let mut b = b
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        for h in hosts {
            b = b.resolve(h, proxy);
        }
        Browser {
            client: b.build().unwrap(),
            jar: HashMap::new(),
            extra_headers: HeaderMap::new(),
        }
    }

    fn cookie_header(&self, url: &Url) -> Option<HeaderValue> {
        let host = url.host_str()?;
        let cookies = self.jar.get(host)?;
        if cookies.is_empty() {
            return None;
        }
        let mut pairs: Vec<String> = cookies
            .iter()
            .map(|(n, c)| format!("{n}={}", c.value))
            .collect();
        pairs.sort();
        HeaderValue::from_str(&pairs.join("; ")).ok()
    }

    fn learn(&mut self, url: &Url, headers: &HeaderMap) {
        let host = url.host_str().unwrap_or("").to_owned();
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, attributes) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let attrs = attributes.to_ascii_lowercase();
            let jar = self.jar.entry(host.clone()).or_default();
            if attrs.contains("max-age=0") || value.is_empty() {
                jar.remove(name.trim());
            } else {
                // A browser refuses __Host- cookies without Secure and Path=/ (RFC 6265bis).
                if name.starts_with("__Host-") {
                    assert!(
                        attrs.contains("secure"),
                        "__Host- cookie without Secure: {v}"
                    );
                    assert!(
                        attrs.contains("path=/"),
                        "__Host- cookie without Path=/: {v}"
                    );
                    assert!(
                        !attrs.contains("domain="),
                        "__Host- cookie with Domain: {v}"
                    );
                }
                jar.insert(
                    name.trim().to_owned(),
                    Cookie {
                        value: value.trim().to_owned(),
                    },
                );
            }
        }
    }

    /// One request, no redirects followed.
    pub async fn request(&mut self, method: Method, url: &str, accept: &str) -> Hop {
        let url = Url::parse(url).unwrap();
        let mut req = self
            .client
            .request(method, url.clone())
            .header(ACCEPT, accept)
            .headers(self.extra_headers.clone());
        if let Some(c) = self.cookie_header(&url) {
            req = req.header(COOKIE, c);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        self.learn(&url, &headers);
        Hop {
            url,
            status,
            headers,
            body,
        }
    }

    /// A top-level navigation.
    pub async fn get(&mut self, url: &str) -> Hop {
        self.request(
            Method::GET,
            url,
            "text/html,application/xhtml+xml,*/*;q=0.8",
        )
        .await
    }

    /// A click on a link of a page from the same origin: a navigation with
    /// `Sec-Fetch-Site: same-origin`, as browsers send it.
    pub async fn click(&mut self, url: &str) -> Hop {
        self.extra_headers
            .insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        let hop = self.get(url).await;
        self.extra_headers.remove("sec-fetch-site");
        hop
    }

    /// Navigates and follows redirects (at most 10), returning every hop.
    pub async fn navigate(&mut self, url: &str) -> Vec<Hop> {
        let mut hops = Vec::new();
        let mut next = url.to_owned();
        for _ in 0..10 {
            let hop = self.get(&next).await;
            let loc = hop.location().filter(|_| hop.status.is_redirection());
            hops.push(hop);
            match loc {
                Some(l) => next = l.to_string(),
                None => return hops,
            }
        }
        panic!("more than 10 redirects from {url}");
    }

    /// `GET` as an API client (`Accept: application/json`).
    pub async fn api(&mut self, url: &str) -> Hop {
        self.request(Method::GET, url, "application/json").await
    }

    pub fn cookie(&self, host: &str, name: &str) -> Option<&Cookie> {
        self.jar.get(host)?.get(name)
    }

    /// Names of the cookies held for `host`.
    pub fn cookie_names(&self, host: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .jar
            .get(host)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}
