//! Benchmark helper: the stand-in Entra ID, and bulk sign-ins through a running Portcullis.
//!
//! ```text
//! bench-signin serve DIR [LIFETIME_SECS [REDIRECT_URI...]]
//!     Starts the stand-in on 127.0.0.1 (HTTPS, certificate from a CA written to DIR/idp-ca.pem),
//!     writes its issuer to DIR/issuer and serves until killed, or LIFETIME_SECS (default 3600).
//!     The app registration accepts exactly the REDIRECT_URIs (each proxy's
//!     `https://HOST:PORT/.auth/callback`), as Entra accepts only registered ones.
//! bench-signin sessions PROXY_ADDR HOST PATH COUNT OUT
//!     Signs in COUNT times through the proxy at PROXY_ADDR (Host HOST, starting at PATH), each
//!     as a fresh browser, and writes one session cookie value per line to OUT. Certificates are
//!     not checked: this client only talks to loopback servers the benchmark itself started
//!     with throwaway certificates (the proxy, in turn, verifies the stand-in's).
//! ```
//!
//! Built as an example so the benchmark can use the library's stand-in without it being part of
//! the `portcullis` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use entra_standin::{StandIn, StandInConfig, TestClient, TestUser};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

pub const CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
pub const CLIENT_SECRET: &str = "bench-client-secret";
const COOKIE: &str = "__Host-portcullis";

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") if args.len() >= 2 => {
            let lifetime = args.get(2).map_or(Ok(3600), |s| s.parse())?;
            let redirect_uris = args.get(3..).unwrap_or_default();
            serve(
                PathBuf::from(&args[1]),
                Duration::from_secs(lifetime),
                redirect_uris,
            )
            .await
        }
        Some("sessions") if args.len() == 6 => {
            let proxy: SocketAddr = args[1].parse()?;
            if !proxy.ip().is_loopback() {
                return Err("the proxy must be on loopback".into());
            }
            let count: usize = args[4].parse()?;
            sessions(proxy, &args[2], &args[3], count, &args[5]).await
        }
        _ => Err(
            "usage: bench-signin serve DIR [LIFETIME [REDIRECT_URI...]] | sessions PROXY HOST PATH COUNT OUT"
                .into(),
        ),
    }
}

async fn serve(dir: PathBuf, lifetime: Duration, redirect_uris: &[String]) -> Result<(), Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate()?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("idp-ca.pem"), ca_cert.pem())?;

    let mut users = Vec::new();
    for i in 0..8 {
        let mut u = TestUser::new(
            &format!("user{i}@bench.example"),
            &format!("Bench User {i}"),
        );
        u.groups = vec!["0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c3".into()];
        u.roles = vec!["Bench.Read".into()];
        users.push(u);
    }
    let idp = StandIn::start(StandInConfig {
        users,
        clients: vec![
            TestClient::new(CLIENT_ID, Some(CLIENT_SECRET)).with_redirect_uris(redirect_uris)
        ],
        default_user: Some("user0@bench.example".into()),
        tls: Some((leaf.pem(), key.serialize_pem())),
        ..StandInConfig::default()
    })
    .await?;
    std::fs::write(dir.join("issuer"), idp.issuer())?;
    eprintln!("bench-signin: stand-in Entra ID at {}", idp.issuer());
    // Bounded: the stand-in stops by itself even if nobody kills it.
    tokio::select! {
        _ = tokio::time::sleep(lifetime) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

async fn sessions(
    proxy: SocketAddr,
    host: &str,
    path: &str,
    count: usize,
    out: &str,
) -> Result<(), Error> {
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .resolve(host, proxy)
        .build()?;
    let start = format!("https://{host}:{}{path}", proxy.port());
    let mut tasks = tokio::task::JoinSet::new();
    let mut cookies = Vec::with_capacity(count);
    for i in 0..count {
        let (client, start) = (client.clone(), start.clone());
        tasks.spawn(async move { sign_in(&client, &start).await });
        // At most 16 sign-ins in flight.
        if tasks.len() >= 16 || i + 1 == count {
            while let Some(r) = tasks.join_next().await {
                cookies.push(r??);
                if tasks.len() < 8 {
                    break;
                }
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        cookies.push(r??);
    }
    std::fs::write(out, cookies.join("\n") + "\n")?;
    eprintln!(
        "bench-signin: {} session(s) written to {out}",
        cookies.len()
    );
    Ok(())
}

/// One browser's sign-in: proxy → authorize → callback; returns the session cookie's value.
async fn sign_in(client: &reqwest::Client, start: &str) -> Result<String, Error> {
    let mut jar: Vec<(String, String)> = Vec::new();
    let mut url = reqwest::Url::parse(start)?;
    for _ in 0..6 {
        let cookie = jar
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = client.get(url.clone()).header("accept", "text/html");
        if !cookie.is_empty() && url.host_str() != Some("127.0.0.1") {
            req = req.header("cookie", cookie);
        }
        let resp = req.send().await?;
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str()?;
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            if let Some((n, val)) = pair.split_once('=') {
                jar.retain(|(k, _)| k != n);
                if !val.is_empty() {
                    jar.push((n.to_owned(), val.to_owned()));
                }
            }
        }
        if let Some((_, v)) = jar.iter().find(|(n, _)| n == COOKIE) {
            return Ok(v.clone());
        }
        let Some(next) = resp.headers().get("location") else {
            return Err(format!("sign-in stopped at {url} with {}", resp.status()).into());
        };
        url = url.join(next.to_str()?)?;
    }
    Err("sign-in did not finish in 6 hops".into())
}
