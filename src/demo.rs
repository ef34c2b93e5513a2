//! `portcullis demo`: the whole product on localhost in one process, for a first look.
//!
//! Starts the stand-in Entra ID (plain HTTP on loopback) with three demo users, a "whoami"
//! upstream that shows the identity headers it receives, and the real proxy (`crate::run`)
//! with the memory store, a freshly generated self-signed certificate for `localhost`, and two
//! routes: `/` for every demo user and `/admin` for the Admins group only. Ctrl-C stops all of
//! it. Nothing here is reachable from `portcullis run`.

mod whoami;

use std::net::SocketAddr;
use std::path::Path;

use entra_standin::{StandIn, StandInConfig, TestClient, TestUser};

use crate::config::{Config, OidcConfig};

pub const GROUP_STAFF: &str = "5a0b6e5c-0d6f-4c1e-9a53-7d2f4b8c1e01";
pub const GROUP_ADMINS: &str = "8c3d2e1f-7a6b-4d5c-8e9f-0a1b2c3d4e02";
const CLIENT_ID: &str = "7f3e2d1c-0b9a-4e8d-8c7b-6a5f4e3d2c10";

/// Where the demo listens.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// HTTPS port on 127.0.0.1 (the browser opens `https://localhost:<port>/`).
    pub port: u16,
    /// Admin port on 127.0.0.1 (`/metrics`, `/readyz`).
    pub admin_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo set-up: {0}")]
    Setup(String),
    #[error(transparent)]
    Run(#[from] crate::RunError),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

/// The demo's users: who they are decides what they may open.
pub fn users() -> Vec<TestUser> {
    let mut alice = TestUser::new("alice@demo.example", "Alice Anderson");
    alice.groups = vec![GROUP_STAFF.into()];
    alice.roles = vec!["Wiki.Read".into()];
    let mut bob = TestUser::new("bob@demo.example", "Bob Brown");
    bob.groups = vec![GROUP_STAFF.into(), GROUP_ADMINS.into()];
    bob.roles = vec!["Wiki.Read".into(), "Wiki.Admin".into()];
    let chloe = TestUser::new("chloe@demo.example", "Chloé Núñez");
    vec![alice, bob, chloe]
}

/// The demo's routing file: `/` for every demo user, `/admin` for the Admins group only.
fn routes(upstream: SocketAddr) -> String {
    format!(
        "[[route]]\nname = \"whoami\"\nhost = \"localhost\"\nupstream = \"http://{upstream}\"\nauth = \"login\"\n\n\
         [[route]]\nname = \"admin\"\nhost = \"localhost\"\npath_prefix = \"/admin\"\n\
         upstream = \"http://{upstream}\"\nauth = \"login\"\nallowed_groups = [\"{GROUP_ADMINS}\"]\n"
    )
}

/// Runs the demo until `shutdown` completes. `ready` is called with the URL to open once
/// everything serves.
pub async fn run(
    options: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&str),
) -> Result<(), DemoError> {
    // Only the certificate is written to disk (the proxy reads and watches certificate files);
    // the configuration and routes are built here.
    let dir = tempfile::TempDir::new().map_err(setup("temporary directory"))?;
    let url = format!("https://localhost:{}/", options.port);
    let origin = format!("https://localhost:{}", options.port);

    let idp = StandIn::start(StandInConfig {
        users: users(),
        clients: vec![TestClient {
            client_id: CLIENT_ID.into(),
            secret: Some("demo-client-secret".into()),
            redirect_uris: vec![format!("{origin}/.auth/callback")],
            post_logout_redirect_uris: vec![format!("{origin}/")],
            ..TestClient::default()
        }],
        default_user: None,
        ..StandInConfig::default()
    })
    .await
    .map_err(setup("stand-in Entra ID"))?;
    write_certificate(dir.path())?;
    let listen = SocketAddr::from(([127, 0, 0, 1], options.port));
    let mut config = Config::new(
        listen,
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    )
    .map_err(setup("config"))?;
    config.server.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], options.admin_port)));
    config.server.shutdown_grace = std::time::Duration::from_secs(2);
    let upstream = whoami::start(config.server.clone())
        .await
        .map_err(setup("whoami upstream"))?;
    let mut oidc = OidcConfig::new(&idp.issuer(), CLIENT_ID, Some("demo-client-secret"))
        .map_err(setup("config"))?;
    oidc.graph_url = idp.graph_url();
    oidc.post_logout_redirect_uri = Some("/".to_owned());
    config.oidc = Some(oidc);
    let routes = crate::config::routes::parse(&routes(upstream.addr), Path::new("(demo routes)"))
        .map_err(setup("routes"))?;

    let listeners = crate::Listeners::bind(&config)
        .await
        .map_err(setup("listen (is another demo running? try --port)"))?;
    let running = crate::App::build(config, routes)
        .await?
        .serve(listeners, shutdown);
    if running.ready().await {
        ready(&url);
    }
    running.stopped().await?;
    drop(upstream);
    idp.shutdown().await;
    Ok(())
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made now.
fn write_certificate(dir: &Path) -> Result<(), DemoError> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(setup("certificate"))?;
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).map_err(setup("certificate"))?;
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem())
        .map_err(setup("certificate"))?;
    Ok(())
}
