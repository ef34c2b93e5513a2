//! No way around the gate: every spelling of a path names one route, and no client-sent byte
//! poses as identity. Requests are written byte for byte (a client library would normalize
//! some spellings before they leave), against `/public` open, `/admin` limited to a group and
//! `/` for any signed-in user, all on one upstream.

use crate::support::redis::RedisServer;
use crate::support::signin::{alice, jose, login_route, Setup, SignIn, GROUP_ADMINS, HOST};
use crate::support::Harness;

const COOKIE: &str = "__Host-portcullis";

/// One raw answer: status, head (lower case) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn parse(raw: &str) -> Answer {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {raw:?}"));
        Answer {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    /// The request URI the echo upstream saw, if the answer is its echo.
    fn upstream_uri(&self) -> Option<String> {
        let start = self.body.find('{')?;
        let end = self.body.rfind('}')?;
        let echo: serde_json::Value = serde_json::from_str(&self.body[start..=end]).ok()?;
        echo["uri"].as_str().map(str::to_owned)
    }

    /// Every value the upstream saw for header `name` (lower case).
    fn seen(&self, name: &str) -> Vec<String> {
        let start = self.body.find('{').unwrap_or(0);
        let end = self.body.rfind('}').map_or(self.body.len(), |e| e + 1);
        let echo: serde_json::Value = serde_json::from_str(&self.body[start..end])
            .unwrap_or_else(|_| panic!("not an echo: {}", self.body));
        crate::support::seen(&echo, name)
    }
}

/// Sends `GET path` with `headers` (raw lines) over its own TLS connection.
async fn get(proxy: &Harness, path: &str, headers: &str) -> Answer {
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{headers}Connection: close\r\n\r\n");
    Answer::parse(&proxy.raw_h1(HOST, request.as_bytes()).await)
}

fn gate_routes() -> String {
    format!(
        "[[route]]\nname = \"public\"\nhost = \"{HOST}\"\npath_prefix = \"/public\"\nupstream = \"{{upstream}}\"\nauth = \"public\"\n\n{}{}",
        login_route(
            "admin",
            HOST,
            &format!("path_prefix = \"/admin\"\nallowed_groups = [\"{GROUP_ADMINS}\"]")
        ),
        login_route("app", HOST, ""),
    )
}

/// Signs `user` in with a browser and returns the session cookie's value.
async fn session_of(s: &SignIn, user: &str) -> String {
    let b = s.signed_in_as(user).await;
    b.cookie(HOST, COOKIE).unwrap().value.clone()
}

/// Spellings of `/admin/x` that some server reads as `/admin/x`.
const ADMIN_SPELLINGS: &[&str] = &[
    "/ADMIN/x",
    "/Admin/x",
    "/admin%2fx",
    "/admin%2Fx",
    "/admin%5cx",
    "/admin;x",
    "/admin;jsessionid=1/x",
    "/admin%3bx",
    "/%61dmin/x",
    "/%41DMIN/x",
    "/admin%00/x",
    "/admin%252fx",
    "//admin/x",
    "/admin//x",
    "/public/../admin/x",
    "/public/%2e%2e/admin/x",
    "/public/%2E%2E/admin/x",
    "/public%2f..%2fadmin/x",
    "/public/..;/admin/x",
    "/public;x/../admin/x",
    "/public\\..\\admin/x",
    "/adm%C4%B1n/x",
    "/adm%c4%b1n/x",
    "/%u0061dmin/x",
];

#[tokio::test]
async fn no_spelling_of_admin_reaches_the_upstream_for_a_user_outside_the_group() {
    let s = SignIn::start(Setup {
        routes: gate_routes(),
        users: vec![alice(), jose()],
        ..Setup::default()
    })
    .await;
    let alice = session_of(&s, "alice@contoso.example").await;
    let cookie = format!("Cookie: {COOKIE}={alice}\r\n");
    // The session works, and the plain spelling is denied.
    let home = get(&s.proxy, "/x", &cookie).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert_eq!(home.upstream_uri().as_deref(), Some("/x"));
    assert_eq!(get(&s.proxy, "/admin/x", &cookie).await.status, 403);
    for spelling in ADMIN_SPELLINGS {
        let a = get(&s.proxy, spelling, &cookie).await;
        assert!(
            a.status == 400 || a.status == 403,
            "{spelling} answered {}: {}",
            a.status,
            a.body
        );
        assert_eq!(a.upstream_uri(), None, "{spelling} reached the upstream");
    }
}

#[tokio::test]
async fn a_member_reaches_admin_in_any_case_and_the_upstream_sees_the_canonical_path() {
    let s = SignIn::start(Setup {
        routes: gate_routes(),
        users: vec![alice(), jose()],
        ..Setup::default()
    })
    .await;
    let jose = session_of(&s, "jose@contoso.example").await;
    let cookie = format!("Cookie: {COOKIE}={jose}\r\n");
    for (sent, forwarded) in [
        ("/admin/x?q=%2F%2e", "/admin/x?q=%2F%2e"),
        ("/ADMIN/x", "/ADMIN/x"),
        ("/%61dmin//x", "/admin/x"),
        ("/admin/caf%c3%a9", "/admin/caf%C3%A9"),
    ] {
        let a = get(&s.proxy, sent, &cookie).await;
        assert_eq!(a.status, 200, "{sent}: {}", a.body);
        assert_eq!(a.upstream_uri().as_deref(), Some(forwarded), "{sent}");
    }
}

#[tokio::test]
async fn an_encoded_slash_or_parameter_opt_in_serves_only_its_own_route() {
    let routes = format!(
        "[[route]]\nname = \"files\"\nhost = \"{HOST}\"\npath_prefix = \"/files\"\nupstream = \"{{upstream}}\"\n\
         auth = \"public\"\nallow_encoded_slashes = true\nallow_path_parameters = true\n\n\
         [[route]]\nname = \"rest\"\nhost = \"{HOST}\"\nupstream = \"{{upstream}}\"\nauth = \"public\"\n\
         allow_encoded_slashes = true\n\n\
         [[route]]\nname = \"secret\"\nhost = \"{HOST}\"\npath_prefix = \"/secret\"\nupstream = \"{{upstream}}\"\nauth = \"public\"\n"
    );
    let up = crate::support::Upstream::start("a").await;
    let h = Harness::start(&routes.replace("{upstream}", &up.url())).await;
    let a = get(&h, "/files/a%2fb;v=2", "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.upstream_uri().as_deref(), Some("/files/a%2Fb;v=2"));
    // `rest` allows escaped slashes, but decoded this path is /secret's.
    assert_eq!(get(&h, "/secret%2fkey", "").await.status, 400);
    assert_eq!(get(&h, "/docs%2fa", "").await.status, 200);
    // `secret` allows neither.
    assert_eq!(get(&h, "/secret/a%2fb", "").await.status, 400);
    assert_eq!(get(&h, "/secret/a;b", "").await.status, 400);
}

/// Forged identity in every spelling a framework might read as its own header.
const FORGED: &str = "X-Auth-Request-Email: admin@contoso.example\r\n\
                      X-Auth-Request_Email: admin@contoso.example\r\n\
                      X_Auth_Request_Email: admin@contoso.example\r\n\
                      X_MS_CLIENT_PRINCIPAL_NAME: admin\r\n\
                      X-MS-CLIENT-PRINCIPAL-NAME: admin\r\n\
                      X-Forwarded-User: admin\r\n\
                      X-Forwarded-Email: admin@contoso.example\r\n\
                      X-Forwarded-Groups: admins\r\n\
                      X-Forwarded-Preferred-Username: admin\r\n\
                      X-Forwarded-Access-Token: forged\r\n\
                      Remote-User: admin\r\n\
                      X-Remote-User: admin\r\n\
                      X-Original-URL: /admin/x\r\n\
                      X-Rewrite-URL: /admin/x\r\n\
                      True-Client-IP: 10.9.9.9\r\n";

fn assert_nothing_forged(a: &Answer) {
    let echo = &a.body;
    for forged in [
        "admin@contoso.example",
        "\"admin\"",
        "admins",
        "forged",
        "10.9.9.9",
    ] {
        assert!(
            !echo.contains(forged),
            "{forged} reached the upstream: {echo}"
        );
    }
    for name in [
        "x_auth_request_email",
        "x-auth-request_email",
        "x_ms_client_principal_name",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "remote-user",
        "x-remote-user",
        "x-original-url",
        "x-rewrite-url",
        "true-client-ip",
    ] {
        assert!(a.seen(name).is_empty(), "{name} reached the upstream");
    }
}

#[tokio::test]
async fn forged_identity_in_any_spelling_never_reaches_a_public_or_protected_upstream() {
    let s = SignIn::start(Setup {
        routes: gate_routes(),
        ..Setup::default()
    })
    .await;
    let public = get(&s.proxy, "/public/x", FORGED).await;
    assert_eq!(public.status, 200, "{}", public.body);
    assert_nothing_forged(&public);
    let alice = session_of(&s, "alice@contoso.example").await;
    let protected = get(
        &s.proxy,
        "/x",
        &format!("{FORGED}Cookie: {COOKIE}={alice}\r\n"),
    )
    .await;
    assert_eq!(protected.status, 200, "{}", protected.body);
    assert_nothing_forged(&protected);
    assert_eq!(
        protected.seen("x-auth-request-email"),
        ["alice@contoso.example"]
    );
}

#[tokio::test]
async fn strip_headers_removes_more_names_on_every_route() {
    let up = crate::support::Upstream::start("a").await;
    let routes = format!(
        "strip_headers = [\"X-Employee-Id\"]\n\
         [[route]]\nname = \"app\"\nhost = \"{HOST}\"\nupstream = \"{}\"\nauth = \"public\"\n",
        up.url()
    );
    let h = Harness::start(&routes).await;
    let a = get(&h, "/x", "X-Employee-Id: 1\r\nX-Other: kept\r\n").await;
    assert!(a.seen("x-employee-id").is_empty());
    assert_eq!(a.seen("x-other"), ["kept"]);
}

#[tokio::test]
async fn a_trusted_proxy_may_send_url_and_address_overrides_and_a_route_may_allow_an_underscore_name(
) {
    let up = crate::support::Upstream::start("a").await;
    let routes = format!(
        "[[route]]\nname = \"legacy\"\nhost = \"{HOST}\"\npath_prefix = \"/legacy\"\nupstream = \"{}\"\nauth = \"public\"\n\
         allow_underscore_headers = [\"X_Legacy_Tenant\"]\n\n\
         [[route]]\nname = \"rest\"\nhost = \"{HOST}\"\nupstream = \"{}\"\nauth = \"public\"\n",
        up.url(),
        up.url()
    );
    let sent = "X-Original-URL: /admin\r\nX_Legacy_Tenant: t1\r\nX-Auth-Request-User: x\r\n";
    let h = Harness::start_with(
        &routes,
        crate::support::Options {
            server: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
            ..Default::default()
        },
    )
    .await;
    let legacy = get(&h, "/legacy", sent).await;
    assert_eq!(legacy.seen("x-original-url"), ["/admin"]);
    assert_eq!(legacy.seen("x_legacy_tenant"), ["t1"]);
    assert!(legacy.seen("x-auth-request-user").is_empty());
    let rest = get(&h, "/other", sent).await;
    assert!(rest.seen("x_legacy_tenant").is_empty());
}

#[tokio::test]
async fn a_client_connection_header_cannot_remove_the_identity_the_proxy_injects() {
    let s = SignIn::start(Setup {
        routes: gate_routes(),
        ..Setup::default()
    })
    .await;
    let alice = session_of(&s, "alice@contoso.example").await;
    let a = get(
        &s.proxy,
        "/x",
        &format!(
            "Cookie: {COOKIE}={alice}\r\nConnection: X-Auth-Request-Groups, X-Auth-Request-Email, X-Request-Id\r\n"
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.seen("x-auth-request-email"), ["alice@contoso.example"]);
    assert_eq!(a.seen("x-auth-request-groups").len(), 1);
    assert_eq!(a.seen("x-request-id").len(), 1);
}

#[tokio::test]
async fn both_content_length_and_transfer_encoding_cannot_smuggle_a_second_request() {
    let up = crate::support::Upstream::start("a").await;
    let routes = format!(
        "[[route]]\nname = \"app\"\nhost = \"{HOST}\"\nupstream = \"{}\"\nauth = \"public\"\n",
        up.url()
    );
    let h = Harness::start(&routes).await;
    // CL.TE and TE.CL: a server that trusts Content-Length reads a second request here.
    for framing in [
        "Content-Length: 40\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 40",
    ] {
        let smuggle = format!(
            "POST /x HTTP/1.1\r\nHost: {HOST}\r\n{framing}\r\n\r\n\
             0\r\n\r\nGET /admin/x HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
        );
        let raw = h.raw_h1(HOST, smuggle.as_bytes()).await;
        let a = Answer::parse(&raw);
        assert!(a.head.contains("connection: close"), "{raw}");
        assert_eq!(
            raw.matches("HTTP/1.1 ").count(),
            1,
            "one answer only: {raw}"
        );
        assert_eq!(a.upstream_uri().as_deref(), Some("/x"));
        assert!(a.seen("content-length").is_empty(), "{raw}");
        assert!(!raw.contains("/admin"), "{raw}");
    }
}

#[tokio::test]
async fn trace_and_track_are_refused_with_405() {
    let up = crate::support::Upstream::start("a").await;
    let routes = format!(
        "[[route]]\nname = \"app\"\nhost = \"{HOST}\"\nupstream = \"{}\"\nauth = \"public\"\n",
        up.url()
    );
    let h = Harness::start(&routes).await;
    for method in ["TRACE", "TRACK"] {
        let request = format!(
            "{method} /x HTTP/1.1\r\nHost: {HOST}\r\nCookie: secret=1\r\nConnection: close\r\n\r\n"
        );
        let a = Answer::parse(&h.raw_h1(HOST, request.as_bytes()).await);
        assert_eq!(a.status, 405, "{method}");
        assert!(a.head.contains("\r\nallow: get, "), "{}", a.head);
        assert!(!a.body.contains("\"upstream\""));
    }
}

#[tokio::test]
async fn only_websocket_upgrades_are_forwarded() {
    let up = crate::support::Upstream::start("a").await;
    let routes = format!(
        "[[route]]\nname = \"app\"\nhost = \"{HOST}\"\nupstream = \"{}\"\nauth = \"public\"\n",
        up.url()
    );
    let h = Harness::start(&routes).await;
    let a = get(
        &h,
        "/x",
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.seen("upgrade").is_empty());
    assert!(a.seen("http2-settings").is_empty());
}

#[tokio::test]
async fn an_upstream_cannot_set_or_clear_the_proxys_cookies() {
    let s = SignIn::start(Setup {
        routes: gate_routes(),
        ..Setup::default()
    })
    .await;
    let alice = session_of(&s, "alice@contoso.example").await;
    for path in ["/x", "/public/x"] {
        let a = get(
            &s.proxy,
            path,
            &format!("Cookie: {COOKIE}={alice}\r\nX-Test-Action: plant-cookies\r\n"),
        )
        .await;
        assert_eq!(a.status, 200);
        assert!(a.head.contains("set-cookie: app-pref=1"), "{}", a.head);
        assert!(!a.head.contains("planted"), "{path}: {}", a.head);
    }
}

#[tokio::test]
async fn a_non_ascii_cookie_hides_neither_the_session_nor_its_removal() {
    let s = SignIn::start(Setup {
        routes: gate_routes(),
        ..Setup::default()
    })
    .await;
    let alice = session_of(&s, "alice@contoso.example").await;
    let cookie = format!("Cookie: pref=caf\u{e9}; {COOKIE}={alice}; lang=de\r\n");
    let public = get(&s.proxy, "/public/x", &cookie).await;
    assert_eq!(public.status, 200);
    let forwarded = public.seen("cookie").join("; ");
    assert!(
        !forwarded.contains(&alice),
        "the session reached a public upstream"
    );
    assert!(forwarded.contains("lang=de"), "{forwarded}");
    let protected = get(&s.proxy, "/x", &cookie).await;
    assert_eq!(protected.status, 200, "{}", protected.body);
    assert_eq!(
        protected.seen("x-auth-request-email"),
        ["alice@contoso.example"]
    );
}

#[tokio::test]
async fn hundreds_of_session_cookie_copies_cost_a_few_store_lookups() {
    let redis = RedisServer::start();
    let s = SignIn::start(Setup {
        routes: gate_routes(),
        redis: Some(redis.url()),
        session: "cache_ttl = \"1ms\"".into(),
        ..Setup::default()
    })
    .await;
    let alice = session_of(&s, "alice@contoso.example").await;
    let mut copies: Vec<String> = (0..200).map(|i| format!("{COOKIE}={i:0>43}")).collect();
    copies.push(format!("{COOKIE}={alice}"));
    let header = format!("Cookie: {}\r\n", copies.join("; "));
    let before = redis.calls("get");
    let a = get(&s.proxy, "/x", &header).await;
    let lookups = redis.calls("get") - before;
    // The session is the 201st copy: past the cap, so this request is not signed in.
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(lookups <= 3, "{lookups} store lookups for one request");

    let same = format!(
        "Cookie: {}\r\n",
        vec![format!("{COOKIE}={alice}"); 300].join("; ")
    );
    // Past the 1 ms cache_ttl, so the next lookup goes to the store.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let before = redis.calls("get");
    let a = get(&s.proxy, "/x", &same).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        redis.calls("get") - before,
        1,
        "300 copies of one ID, one lookup"
    );
}
