//! TLS session resumption (`tls.session_tickets`): with tickets, any number of returning
//! clients resume; a ticket never resumes under another server name, nor on another instance.

use std::sync::Arc;

use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::HandshakeKind;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::support::{tls_get, Harness, Options, Upstream};

const HOST: &str = "app.example.test";

fn route(upstream: &Upstream) -> String {
    format!(
        "[[route]]\nauth = \"public\"\nname = \"app\"\nhost = \"*\"\nupstream = \"{}\"\n",
        upstream.url()
    )
}

/// A client of the harness's CA that resumes as `resumption` says.
fn client(h: &Harness, resumption: Resumption) -> Arc<rustls::ClientConfig> {
    let mut config = h.pki.client_tls(&[b"http/1.1"]);
    config.resumption = resumption;
    Arc::new(config)
}

/// One GET over a new connection to `h` with `sni` (`support::tls_get`).
async fn get(
    h: &Harness,
    client: &Arc<rustls::ClientConfig>,
    sni: &str,
) -> (HandshakeKind, CertificateDer<'static>) {
    tls_get(h.https, client, sni).await
}

/// `count` other clients, none of which resumes, 16 at a time: each fills the proxy's session
/// cache with new entries (two per TLS 1.3 handshake) where it keeps one.
async fn crowd(h: &Harness, count: usize) {
    let other = client(h, Resumption::disabled());
    for _ in 0..count / 16 {
        let batch = (0..16).map(|_| get(h, &other, HOST));
        for (kind, _) in futures_util::future::join_all(batch).await {
            assert_eq!(kind, HandshakeKind::Full);
        }
    }
}

#[tokio::test]
async fn with_tickets_a_client_resumes_after_hundreds_of_others_have_connected() {
    let up = Upstream::start("a").await;
    let h = Harness::start(&route(&up)).await;
    let returning = client(&h, Resumption::in_memory_sessions(8));
    assert_eq!(get(&h, &returning, HOST).await.0, HandshakeKind::Full);
    crowd(&h, 320).await;
    assert_eq!(
        get(&h, &returning, HOST).await.0,
        HandshakeKind::Resumed,
        "a stateless ticket outlives any number of other clients"
    );
}

#[tokio::test]
async fn without_tickets_only_the_bounded_cache_resumes() {
    let up = Upstream::start("a").await;
    let options = Options {
        tls: "session_tickets = false".into(),
        ..Options::default()
    };
    let h = Harness::start_with(&route(&up), options).await;
    let returning = client(&h, Resumption::in_memory_sessions(8));
    assert_eq!(get(&h, &returning, HOST).await.0, HandshakeKind::Full);
    assert_eq!(
        get(&h, &returning, HOST).await.0,
        HandshakeKind::Resumed,
        "the session cache resumes a client that comes back soon"
    );
    crowd(&h, 320).await;
    assert_eq!(
        get(&h, &returning, HOST).await.0,
        HandshakeKind::Full,
        "320 other clients pushed this one out of the 256-entry cache"
    );
}

/// A client store that files every ticket under one name, so it offers a ticket issued for
/// one host to any other: what a client (or an attacker replaying a captured ticket) can do.
#[derive(Debug)]
struct NameBlind(ClientSessionMemoryCache);

impl NameBlind {
    fn name() -> ServerName<'static> {
        ServerName::try_from(HOST).unwrap()
    }
}

impl ClientSessionStore for NameBlind {
    fn set_kx_hint(&self, _: ServerName<'static>, group: rustls::NamedGroup) {
        self.0.set_kx_hint(Self::name(), group)
    }
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.0.kx_hint(&Self::name())
    }
    fn set_tls12_session(
        &self,
        _: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.0.set_tls12_session(Self::name(), value)
    }
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.0.tls12_session(&Self::name())
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.0.remove_tls12_session(&Self::name())
    }
    fn insert_tls13_ticket(
        &self,
        _: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.0.insert_tls13_ticket(Self::name(), value)
    }
    fn take_tls13_ticket(
        &self,
        _: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.0.take_tls13_ticket(&Self::name())
    }
}

#[tokio::test]
async fn a_ticket_never_resumes_under_another_server_name() {
    let up = Upstream::start("a").await;
    let options = Options {
        extra: "[[tls.certificates]]\ncert_file = \"other.pem\"\nkey_file = \"other-key.pem\"\n\
                server_names = [\"other.test\"]\n"
            .into(),
        certs: vec![("other", vec!["other.test"])],
        ..Options::default()
    };
    let h = Harness::start_with(&route(&up), options).await;
    let blind = client(
        &h,
        Resumption::store(Arc::new(NameBlind(ClientSessionMemoryCache::new(8)))),
    );
    let (kind, default_cert) = get(&h, &blind, HOST).await;
    assert_eq!(kind, HandshakeKind::Full);
    assert_eq!(
        get(&h, &blind, HOST).await.0,
        HandshakeKind::Resumed,
        "the store offers its tickets"
    );
    let (kind, cert) = get(&h, &blind, "other.test").await;
    assert_eq!(
        kind,
        HandshakeKind::Full,
        "a ticket issued under {HOST} is refused under other.test"
    );
    assert_ne!(cert, default_cert, "other.test gets its own certificate");
}

#[tokio::test]
async fn a_ticket_from_another_instance_gets_a_full_handshake_not_an_error() {
    let up = Upstream::start("a").await;
    let first = Harness::start(&route(&up)).await;
    let second = Harness::start_with(
        &route(&up),
        Options {
            pki: Some(first.pki.clone()),
            ..Options::default()
        },
    )
    .await;
    let returning = client(&first, Resumption::in_memory_sessions(8));
    assert_eq!(get(&first, &returning, HOST).await.0, HandshakeKind::Full);
    assert_eq!(
        get(&first, &returning, HOST).await.0,
        HandshakeKind::Resumed
    );
    assert_eq!(
        get(&second, &returning, HOST).await.0,
        HandshakeKind::Full,
        "the second instance cannot open the first one's tickets"
    );
}
