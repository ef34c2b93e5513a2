//! What the upstream learns about the user, and who gets through: identity headers (and the
//! removal of forged ones), App Service's headers, claims headers, policy, groups overage.

use base64::Engine;
use entra_standin::TestUser;

use crate::support::browser::Browser;
use crate::support::seen;
use crate::support::signin::{
    alice, jose, login_route, Setup, SignIn, GROUP_ADMINS, GROUP_STAFF, HOST,
};

const FORGED: &[(&str, &str)] = &[
    ("X-Auth-Request-User", "admin@contoso.example"),
    ("x-auth-request-groups", GROUP_ADMINS),
    ("X-Auth-Request-Oid", "00000000-0000-0000-0000-000000000000"),
    ("X-MS-CLIENT-PRINCIPAL", "eyJhdXRoX3R5cCI6ImFhZCJ9"),
    ("X-MS-CLIENT-PRINCIPAL-ID", "forged"),
    ("X-MS-TOKEN-AAD-ACCESS-TOKEN", "forged"),
    ("X-User-Upn", "forged@contoso.example"),
];

async fn signed_in(s: &SignIn, login_hint: Option<&str>) -> Browser {
    let mut b = s.browser();
    let url = match login_hint {
        Some(h) => s.url(&format!(
            "/.auth/login?rd=%2F&login_hint={}",
            url::form_urlencoded::byte_serialize(h.as_bytes()).collect::<String>()
        )),
        None => s.url("/"),
    };
    let hops = b.navigate(&url).await;
    assert_eq!(
        hops.last().unwrap().status,
        200,
        "{}",
        hops.last().unwrap().body
    );
    b
}

fn forge(b: &mut Browser) {
    for (k, v) in FORGED {
        b.extra_headers.append(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream_on_any_route() {
    let routes = format!(
        "{}[[route]]\nname = \"pub\"\nhost = \"other.example.test\"\nupstream = \"{{upstream}}\"\nauth = \"public\"\n",
        login_route("app", HOST, "[route.claims_headers]\n\"X-User-Upn\" = \"preferred_username\"")
    );
    let s = SignIn::start(Setup {
        routes,
        ..Setup::default()
    })
    .await;
    // A public route: nobody is signed in, so nothing identity-shaped may arrive.
    let mut anon = s.browser();
    forge(&mut anon);
    let hop = anon.get(&s.url_on("other.example.test", "/")).await;
    let echo = hop.json();
    for (k, _) in FORGED {
        assert!(seen(&echo, k).is_empty(), "{k} reached a public upstream");
    }

    // A login route: only the proxy's own values arrive, one copy each.
    let mut b = signed_in(&s, None).await;
    forge(&mut b);
    let echo = b.get(&s.url("/")).await.json();
    let user = s.idp.user("alice@contoso.example").unwrap();
    assert_eq!(
        seen(&echo, "x-auth-request-user"),
        ["alice@contoso.example"]
    );
    assert_eq!(seen(&echo, "x-auth-request-oid"), [user.oid]);
    assert_eq!(seen(&echo, "x-auth-request-groups"), [GROUP_STAFF]);
    assert_eq!(seen(&echo, "x-user-upn"), ["alice@contoso.example"]);
    for k in [
        "x-ms-client-principal",
        "x-ms-client-principal-id",
        "x-ms-token-aad-access-token",
    ] {
        assert!(seen(&echo, k).is_empty(), "{k}");
    }
}

#[tokio::test]
async fn easy_auth_headers_match_app_service() {
    let s = SignIn::start(Setup {
        users: vec![jose()],
        routes: login_route("app", HOST, "headers = \"easy-auth\""),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s, None).await;
    forge(&mut b);
    let echo = b.get(&s.url("/")).await.json();
    let user = s.idp.user("jose@contoso.example").unwrap();
    assert_eq!(
        seen(&echo, "x-ms-client-principal-name"),
        ["jose@contoso.example"]
    );
    assert_eq!(seen(&echo, "x-ms-client-principal-id"), [user.oid.as_str()]);
    assert_eq!(seen(&echo, "x-ms-client-principal-idp"), ["aad"]);
    assert!(seen(&echo, "x-auth-request-user").is_empty());
    let principal = seen(&echo, "x-ms-client-principal");
    assert_eq!(principal.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(&principal[0])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["auth_typ"], "aad");
    let claims = json["claims"].as_array().unwrap();
    let values = |typ: &str| -> Vec<String> {
        claims
            .iter()
            .filter(|c| c["typ"] == typ)
            .map(|c| c["val"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        values(json["role_typ"].as_str().unwrap()),
        ["Wiki.Read", "Wiki.Admin"]
    );
    assert_eq!(values("groups"), [GROUP_STAFF, GROUP_ADMINS]);
    assert_eq!(values(json["name_typ"].as_str().unwrap()), ["José Núñez"]);
    assert_eq!(
        values("http://schemas.microsoft.com/identity/claims/objectidentifier"),
        [user.oid]
    );
}

#[tokio::test]
async fn non_ascii_names_arrive_as_utf8() {
    let s = SignIn::start(Setup {
        users: vec![jose()],
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s, None).await;
    let echo = b.get(&s.url("/")).await.json();
    // The echo decodes header bytes as UTF-8: the bytes were UTF-8 and unaltered.
    assert_eq!(seen(&echo, "x-auth-request-name"), ["José Núñez"]);
}

#[tokio::test]
async fn policy_admits_and_denies_by_groups_roles_and_users() {
    let routes = format!(
        "{}{}{}{}",
        login_route("home", HOST, ""),
        login_route("staff", HOST, &format!("path_prefix = \"/staff\"\nallowed_groups = [\"{GROUP_STAFF}\"]")),
        login_route("admins", HOST, &format!("path_prefix = \"/admin\"\nallowed_groups = [\"{GROUP_ADMINS}\"]\nallowed_roles = [\"Wiki.Admin\"]")),
        login_route("domain", HOST, "path_prefix = \"/domain\"\nallowed_email_domains = [\"fabrikam.example\"]"),
    );
    let s = SignIn::start(Setup {
        users: vec![alice(), jose()],
        routes,
        ..Setup::default()
    })
    .await;
    let mut a = signed_in(&s, Some("alice@contoso.example")).await;
    let mut j = signed_in(&s, Some("jose@contoso.example")).await;
    assert_eq!(a.get(&s.url("/staff/x")).await.status, 200);
    let denied = a.get(&s.url("/admin/x")).await;
    assert_eq!(denied.status, 403);
    assert!(
        denied.body.contains("limited to members of certain groups"),
        "{}",
        denied.body
    );
    assert!(
        !denied.body.contains(GROUP_ADMINS),
        "the page does not list the groups"
    );
    assert!(denied.body.contains("Request ID"));
    let json = a.api(&s.url("/admin/x")).await;
    assert_eq!(json.status, 403);
    assert_eq!(json.json()["status"], 403);
    assert_eq!(j.get(&s.url("/admin/x")).await.status, 200);
    assert_eq!(j.get(&s.url("/domain")).await.status, 403);
}

#[tokio::test]
async fn groups_roles_and_users_each_decide_on_their_own() {
    // Carol is in the Admins group without the admin role, Dave holds the role outside the
    // group, José is the one listed user: each requirement is told apart from the others.
    let mut carol = TestUser::new("carol@contoso.example", "Carol");
    carol.groups = vec![GROUP_ADMINS.into()];
    let mut dave = TestUser::new("dave@contoso.example", "Dave");
    dave.roles = vec!["Wiki.Admin".into()];
    let jose = jose();
    let routes = format!(
        "{}{}{}{}",
        login_route("home", HOST, ""),
        login_route(
            "groups",
            HOST,
            &format!("path_prefix = \"/groups\"\nallowed_groups = [\"{GROUP_ADMINS}\"]")
        ),
        login_route(
            "roles",
            HOST,
            "path_prefix = \"/roles\"\nallowed_roles = [\"Wiki.Admin\"]"
        ),
        login_route(
            "users",
            HOST,
            &format!(
                "path_prefix = \"/users\"\nallowed_users = [\"{}\"]",
                jose.oid
            )
        ),
    );
    let s = SignIn::start(Setup {
        users: vec![carol, dave, jose],
        routes,
        ..Setup::default()
    })
    .await;
    let expect = [
        ("carol@contoso.example", [200, 403, 403]),
        ("dave@contoso.example", [403, 200, 403]),
        ("jose@contoso.example", [200, 200, 200]),
    ];
    for (user, statuses) in expect {
        let mut b = signed_in(&s, Some(user)).await;
        for (path, status) in ["/groups/x", "/roles/x", "/users/x"].iter().zip(statuses) {
            let hop = b.get(&s.url(path)).await;
            assert_eq!(hop.status, status, "{user} {path}: {}", hop.body);
        }
    }
    let mut carol = signed_in(&s, Some("carol@contoso.example")).await;
    let roles = carol.get(&s.url("/roles/x")).await;
    assert!(roles.body.contains("certain app roles"), "{}", roles.body);
    let users = carol.get(&s.url("/users/x")).await;
    assert!(users.body.contains("certain users"), "{}", users.body);
}

#[tokio::test]
async fn groups_overage_is_resolved_through_microsoft_graph() {
    let mut many = alice();
    many.groups = (0..5)
        .map(|i| format!("00000000-0000-4000-8000-00000000000{i}"))
        .chain([GROUP_ADMINS.to_owned()])
        .collect();
    let s = SignIn::start(Setup {
        users: vec![many],
        groups_overage_threshold: 3,
        routes: login_route(
            "app",
            HOST,
            &format!("allowed_groups = [\"{GROUP_ADMINS}\"]"),
        ),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s, None).await;
    assert_eq!(s.idp.graph_calls(), 1, "Graph was asked once, at sign-in");
    let echo = b.get(&s.url("/")).await.json();
    let groups = seen(&echo, "x-auth-request-groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].split(',').count(), 6, "{groups:?}");
    assert_eq!(s.idp.graph_calls(), 1, "not again per request");
}

#[tokio::test]
async fn an_overage_spanning_several_graph_pages_is_read_to_the_last_page() {
    // 150 groups at 100 a page: GROUP_ADMINS is on the second page only.
    let mut many = alice();
    many.groups = (0..150)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    many.groups[120] = GROUP_ADMINS.to_owned();
    let s = SignIn::start(Setup {
        users: vec![many],
        groups_overage_threshold: 3,
        graph_page_limit: Some(100),
        routes: login_route(
            "app",
            HOST,
            &format!("allowed_groups = [\"{GROUP_ADMINS}\"]"),
        ),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s, None).await;
    assert_eq!(s.idp.graph_calls(), 2, "both pages were read");
    let echo = b.get(&s.url("/")).await.json();
    let groups = seen(&echo, "x-auth-request-groups");
    let groups: Vec<&str> = groups[0].split(',').collect();
    assert_eq!(groups.len(), 150);
    assert!(groups.contains(&GROUP_ADMINS));
    assert!(groups.contains(&"00000000-0000-4000-8000-000000000149"));
}

#[tokio::test]
async fn an_unresolvable_overage_denies_group_routes() {
    let mut many = alice();
    many.groups = (0..5)
        .map(|i| format!("00000000-0000-4000-8000-00000000000{i}"))
        .collect();
    let s = SignIn::start(Setup {
        users: vec![many],
        groups_overage_threshold: 3,
        // Graph lives elsewhere and does not answer.
        oidc: "graph_url = \"https://127.0.0.1:9\"".into(),
        routes: format!(
            "{}{}",
            login_route(
                "groups",
                HOST,
                &format!("path_prefix = \"/g\"\nallowed_groups = [\"{GROUP_STAFF}\"]")
            ),
            login_route("open", HOST, "path_prefix = \"/\""),
        ),
        ..Setup::default()
    })
    .await;
    let mut b = signed_in(&s, None).await;
    let denied = b.get(&s.url("/g")).await;
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("could not be read"), "{}", denied.body);
    assert_eq!(b.get(&s.url("/other")).await.status, 200);
}
