//! A sign-in set-up: the stand-in Entra ID over TLS, an echo upstream, and the real proxy
//! configured against them, with the memory or a spawned Redis store.

use std::sync::Arc;
use std::time::Duration;

use entra_standin::{StandIn, StandInConfig, TestClient, TestUser};

use super::browser::Browser;
use super::{Harness, Options, Pki, Upstream};

pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const CLIENT_SECRET: &str = "test-client-secret~value";
pub const SESSION_SECRET: &str = "a-session-secret-that-is-long-enough-for-aes";
/// The host most tests use; the test certificate covers `*.example.test`.
pub const HOST: &str = "app.example.test";

/// What to vary.
pub struct Setup {
    pub users: Vec<TestUser>,
    /// Username the stand-in signs in without asking; first user if `None`.
    pub default_user: Option<String>,
    /// The routing file; `{upstream}` is replaced by the echo upstream's URL.
    pub routes: String,
    pub oidc: String,
    pub session: String,
    /// A Redis URL: `store = "redis"`.
    pub redis: Option<String>,
    /// Lines of the `[sign_in]` section; [`GENEROUS_SIGN_IN`] by default.
    pub sign_in: String,
    /// Lines added to `[server]` (e.g. `trusted_proxies`).
    pub server: String,
    /// The authority's tenant segment; the stand-in's home tenant if `None`.
    pub tenant: Option<String>,
    /// The stand-in's home tenant ID; random if `None`.
    pub tenant_id: Option<String>,
    pub access_token_lifetime: Duration,
    pub groups_overage_threshold: usize,
    /// The most groups Graph returns per page; the stand-in's default (999) if `None`.
    pub graph_page_limit: Option<usize>,
    /// The app registration at the stand-in; [`client`] if `None`. Its redirect URIs are
    /// registered once the proxy listens (they name its port).
    pub client: Option<TestClient>,
    /// More app registrations at the stand-in (the clients of an API behind the proxy).
    pub extra_clients: Vec<TestClient>,
    /// The `[oidc]` credential lines; `client_secret = CLIENT_SECRET` if `None`.
    pub credential: Option<String>,
    /// Files written next to the proxy's configuration (name, content).
    pub files: Vec<(String, String)>,
    /// More sections of the main file, written last (e.g. `[assertion]`); lines before the
    /// first section header belong to `[redis]` when `redis` is set.
    pub main: String,
    /// The host whose callback and post-logout URIs the app registration names; [`HOST`] if
    /// `None` (a sign-in host, `oidc.signin_host`, is another).
    pub registered_host: Option<&'static str>,
    /// Runs once the stand-in listens, before the proxy's configuration is written: for
    /// settings that name the stand-in's addresses (its IMDS endpoint, say).
    pub prepare: Option<Prepare>,
}

/// See [`Setup::prepare`].
pub type Prepare = Box<dyn FnOnce(&StandIn, &mut Setup) + Send>;

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            users: vec![alice()],
            default_user: None,
            routes: login_route("app", HOST, ""),
            oidc: String::new(),
            session: String::new(),
            redis: None,
            sign_in: GENEROUS_SIGN_IN.into(),
            server: String::new(),
            tenant: None,
            tenant_id: None,
            access_token_lifetime: Duration::from_secs(3600),
            groups_overage_threshold: 200,
            graph_page_limit: None,
            client: None,
            extra_clients: Vec::new(),
            credential: None,
            files: Vec::new(),
            main: String::new(),
            registered_host: None,
            prepare: None,
        }
    }
}

/// Every test signs in from 127.0.0.1, some many times: a limit no test reaches keeps the
/// rate limiter on the path without deciding any test but those of `sign_in_abuse.rs`.
pub const GENEROUS_SIGN_IN: &str = "rate_limit = \"100000/min\"\nburst = 100000";

pub const GROUP_STAFF: &str = "0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c3";
pub const GROUP_ADMINS: &str = "9f8e7d6c-2222-4b5a-9c8d-1e2f3a4b5c6d";

pub fn alice() -> TestUser {
    let mut u = TestUser::new("alice@contoso.example", "Alice Example");
    u.groups = vec![GROUP_STAFF.into()];
    u.roles = vec!["Wiki.Read".into()];
    u
}

pub fn jose() -> TestUser {
    let mut u = TestUser::new("jose@contoso.example", "José Núñez");
    u.groups = vec![GROUP_STAFF.into(), GROUP_ADMINS.into()];
    u.roles = vec!["Wiki.Read".into(), "Wiki.Admin".into()];
    u
}

/// The app registration: a confidential client with CLIENT_SECRET, every optional claim, and
/// (once the proxy listens) its callback and post-logout URIs on [`HOST`].
pub fn client() -> TestClient {
    TestClient::new(CLIENT_ID, Some(CLIENT_SECRET))
}

/// A `[[route]]` with `auth = "login"` to the echo upstream, plus `extra` lines.
pub fn login_route(name: &str, host: &str, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nhost = \"{host}\"\nupstream = \"{{upstream}}\"\nauth = \"login\"\n{extra}\n"
    )
}

pub struct SignIn {
    pub idp: StandIn,
    pub proxy: Harness,
    /// Kept alive for the proxy's routes.
    _upstream: Upstream,
    pki: Arc<Pki>,
    /// The routing file, the sections after `[routes]`, and the `[server]` lines.
    config: (String, String, String),
    files: Vec<(String, String)>,
    registered_host: &'static str,
}

impl SignIn {
    pub async fn start(mut setup: Setup) -> SignIn {
        super::init();
        let pki = Arc::new(Pki::new());
        let (cert, key) = pki.leaf(&["127.0.0.1", "localhost"]);
        let defaults = StandInConfig::default();
        let idp = StandIn::start(StandInConfig {
            tenant_id: setup
                .tenant_id
                .clone()
                .unwrap_or(defaults.tenant_id.clone()),
            users: setup.users.clone(),
            clients: std::iter::once(setup.client.clone().unwrap_or_else(client))
                .chain(setup.extra_clients.iter().cloned())
                .collect(),
            default_user: setup
                .default_user
                .clone()
                .or_else(|| setup.users.first().map(|u| u.username.clone())),
            access_token_lifetime: setup.access_token_lifetime,
            tls: Some((cert, key)),
            groups_overage_threshold: setup.groups_overage_threshold,
            graph_page_limit: setup.graph_page_limit.unwrap_or(defaults.graph_page_limit),
            ..defaults
        })
        .await
        .unwrap();
        if let Some(prepare) = setup.prepare.take() {
            prepare(&idp, &mut setup);
        }
        let upstream = Upstream::start("app").await;
        let routes = setup.routes.replace("{upstream}", &upstream.url());
        let tenant = setup
            .tenant
            .clone()
            .unwrap_or_else(|| idp.tenant_id().to_owned());
        let store = match &setup.redis {
            Some(url) => {
                format!("store = \"redis\"\n[redis]\nurl = \"{url}\"\nkey_prefix = \"pc-test:\"\n")
            }
            None => String::new(),
        };
        let credential = setup
            .credential
            .clone()
            .unwrap_or_else(|| format!("client_secret = \"{CLIENT_SECRET}\""));
        let graph = if setup.oidc.contains("graph_url") {
            String::new()
        } else {
            format!("graph_url = \"{}\"\n", idp.graph_url())
        };
        let extra = format!(
            "[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n{credential}\n\
             ca_file = \"ca.pem\"\n{graph}{}\n\n[sign_in]\n{}\n\n[session]\nsecret = \"{SESSION_SECRET}\"\n{}\n{store}\n{}\n",
            idp.authority(&tenant),
            setup.oidc,
            setup.sign_in,
            setup.session,
            setup.main,
        );
        let proxy = start_proxy(&routes, &extra, &setup.server, pki.clone(), &setup.files).await;
        let registered_host = setup.registered_host.unwrap_or(HOST);
        register(&idp, &proxy, registered_host);
        let s = SignIn {
            idp,
            proxy,
            _upstream: upstream,
            pki,
            config: (routes, extra, setup.server),
            files: setup.files,
            registered_host,
        };
        s.wait_ready().await;
        s
    }

    /// Waits (bounded) until the proxy has loaded the provider's metadata and keys.
    pub async fn wait_ready(&self) {
        assert!(
            self.proxy.ready().await,
            "the proxy did not load the stand-in's metadata"
        );
    }

    pub fn url(&self, path: &str) -> String {
        self.proxy.url(HOST, path)
    }

    pub fn url_on(&self, host: &str, path: &str) -> String {
        self.proxy.url(host, path)
    }

    /// Another proxy instance with the same configuration (the same stand-in, store and
    /// session secret): a replica behind the same load balancer. Only a shared store (Redis)
    /// makes their sessions common.
    pub async fn replica(&self) -> Harness {
        self.replica_with(|sections| sections.to_owned()).await
    }

    /// A [`SignIn::replica`] whose configuration sections after `[routes]` are `edit`ed (a
    /// rolling change of the session secrets, say).
    pub async fn replica_with(&self, edit: impl Fn(&str) -> String) -> Harness {
        let replica = start_proxy(
            &self.config.0,
            &edit(&self.config.1),
            &self.config.2,
            self.pki.clone(),
            &self.files,
        )
        .await;
        register(&self.idp, &replica, self.registered_host);
        assert!(
            replica.ready().await,
            "the replica did not load the stand-in"
        );
        replica
    }

    /// A browser that reaches `proxy` (a [`SignIn::replica`]) under [`HOST`], holding the
    /// cookies `like` holds.
    pub fn browser_at(&self, proxy: &Harness, like: &Browser) -> Browser {
        let mut b = Browser::new(&self.pki.ca_pem, proxy.https, &[HOST]);
        b.jar = like.jar.clone();
        b
    }

    /// A new browser, signed in as `user` (through `login_hint`), back on `/`.
    pub async fn signed_in_as(&self, user: &str) -> Browser {
        let mut b = self.browser();
        let hint: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
        let hops = b
            .navigate(&self.url(&format!("/.auth/login?rd=%2F&login_hint={hint}")))
            .await;
        let last = hops.last().unwrap();
        assert_eq!(last.status, 200, "sign-in as {user}: {}", last.body);
        b
    }

    /// A browser that reaches the proxy under the test host names.
    pub fn browser(&self) -> Browser {
        Browser::new(
            &self.pki.ca_pem,
            self.proxy.https,
            &[
                HOST,
                "other.example.test",
                "admin.example.test",
                "example.test",
                "auth.example.test",
                "unrouted.example.test",
            ],
        )
    }

    /// Stops the proxy and starts a new one with the same configuration (and the same
    /// stand-in, upstream and store).
    pub async fn restart_proxy(self) -> SignIn {
        let s = self.restart_proxy_without_waiting().await;
        s.wait_ready().await;
        s
    }

    /// As [`SignIn::restart_proxy`], without waiting for discovery.
    pub async fn restart_proxy_without_waiting(mut self) -> SignIn {
        let old = std::mem::replace(
            &mut self.proxy,
            start_proxy(
                &self.config.0,
                &self.config.1,
                &self.config.2,
                self.pki.clone(),
                &self.files,
            )
            .await,
        );
        old.stop().await.unwrap();
        register(&self.idp, &self.proxy, self.registered_host);
        self
    }
}

/// Registers the exact URIs the proxy sends for `host` — its callback and the post-logout
/// URI `/` — as the app registration's; the port is only known once the proxy listens.
fn register(idp: &StandIn, proxy: &Harness, host: &str) {
    let origin = format!("https://{host}:{}", proxy.https.port());
    let registered = idp.register_redirect_uris(
        CLIENT_ID,
        &[format!("{origin}/.auth/callback")],
        &[format!("{origin}/")],
    );
    assert!(registered, "the stand-in has no client {CLIENT_ID}");
}

async fn start_proxy(
    routes: &str,
    extra: &str,
    server: &str,
    pki: Arc<Pki>,
    files: &[(String, String)],
) -> Harness {
    Harness::start_with(
        routes,
        Options {
            server: server.to_owned(),
            extra: extra.to_owned(),
            pki: Some(pki),
            files: files.to_vec(),
            ..Options::default()
        },
    )
    .await
}

impl SignIn {
    /// The directory holding the proxy's configuration (and `Setup::files`).
    pub fn dir(&self) -> std::path::PathBuf {
        self.proxy.dir.path().to_owned()
    }
}
