//! A bearer token's groups overage, read from Graph by the app itself, or denied.

use entra_standin::{AppPermission, TestClient, TestUser};
use serde_json::json;

use super::*;

/// A user in 250 groups (Entra puts at most 200 in a token); `extra` is among them.
fn in_many_groups(username: &str, extra: Option<&str>) -> TestUser {
    let mut u = TestUser::new(username, username);
    u.groups = (0..250)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    if let Some(g) = extra {
        u.groups[240] = g.to_owned();
    }
    u
}

/// The proxy's registration, granted Graph's `GroupMember.Read.All` application permission.
fn reads_groups() -> TestClient {
    TestClient {
        app_permissions: vec![AppPermission::graph("GroupMember.Read.All")],
        ..client()
    }
}

fn group_routes() -> String {
    format!(
        "{}{}",
        bearer_route(
            "admins",
            "/admins",
            &format!("allowed_groups = [\"{GROUP_ADMINS}\"]")
        ),
        bearer_route("any", "/", "")
    )
}

#[tokio::test]
async fn an_overage_is_read_from_graph_with_the_apps_own_token_and_kept() {
    let s = SignIn::start(Setup {
        users: vec![
            in_many_groups("ada@contoso.example", Some(GROUP_ADMINS)),
            in_many_groups("bob@contoso.example", None),
        ],
        client: Some(reads_groups()),
        ..setup(group_routes())
    })
    .await;
    let ada = user_token(&s, CALLER, "ada@contoso.example", &["Files.Read"]).await;
    let c = claims_of(&ada);
    assert_eq!(
        (c.get("groups"), &c["_claim_names"]["groups"]),
        (None, &json!("src1"))
    );
    let (graph, app_tokens) = (s.idp.graph_calls(), s.idp.token_calls().client_credentials);

    let r = call(&s, "/admins/x", Some(&ada)).await;
    assert_eq!(r.status(), 200, "the group is found through Graph");
    let echo = crate::support::echo_json(r).await;
    let groups = seen(&echo, "x-auth-request-groups");
    assert_eq!(groups[0].split(',').count(), 250);
    assert!(groups[0].contains(GROUP_ADMINS));
    assert_eq!(s.idp.graph_calls(), graph + 1);
    assert_eq!(s.idp.token_calls().client_credentials, app_tokens + 1);

    // Kept: the next requests ask neither Graph nor the token endpoint.
    assert_eq!(call(&s, "/admins/y", Some(&ada)).await.status(), 200);
    assert_eq!(call(&s, "/z", Some(&ada)).await.status(), 200);
    assert_eq!(s.idp.graph_calls(), graph + 1);

    // Another user: Graph once more, with the app token already held.
    let bob = user_token(&s, CALLER, "bob@contoso.example", &["Files.Read"]).await;
    assert_eq!(call(&s, "/admins/x", Some(&bob)).await.status(), 403);
    assert_eq!(call(&s, "/x", Some(&bob)).await.status(), 200);
    assert_eq!(s.idp.graph_calls(), graph + 2);
    assert_eq!(s.idp.token_calls().client_credentials, app_tokens + 1);
}

#[tokio::test]
async fn an_overage_denies_group_routes_when_graph_cannot_be_asked() {
    let users = || {
        vec![
            in_many_groups("ada@contoso.example", Some(GROUP_ADMINS)),
            in_many_groups("bob@contoso.example", Some(GROUP_ADMINS)),
        ]
    };
    let denied = |what: &str, body: &str| {
        assert!(body.contains("could not be read"), "{what}: {body}");
    };

    // The app was never granted GroupMember.Read.All: Graph answers 403.
    let s = SignIn::start(Setup {
        users: users(),
        ..setup(group_routes())
    })
    .await;
    let ada = user_token(&s, CALLER, "ada@contoso.example", &["Files.Read"]).await;
    let r = call(&s, "/admins/x", Some(&ada)).await;
    assert_eq!(r.status(), 403);
    denied("no permission", &r.text().await.unwrap());
    assert_eq!(
        call(&s, "/x", Some(&ada)).await.status(),
        200,
        "no group policy, no denial"
    );

    // Graph is down.
    let s = SignIn::start(Setup {
        users: users(),
        client: Some(reads_groups()),
        ..setup(group_routes())
    })
    .await;
    s.idp.set_graph_available(false);
    let ada = user_token(&s, CALLER, "ada@contoso.example", &["Files.Read"]).await;
    let r = call(&s, "/admins/x", Some(&ada)).await;
    assert_eq!(r.status(), 403);
    denied("Graph down", &r.text().await.unwrap());
    // A failed lookup is not repeated on every request.
    let asked = s.idp.graph_calls();
    assert_eq!(call(&s, "/admins/x", Some(&ada)).await.status(), 403);
    assert_eq!(s.idp.graph_calls(), asked);

    // A public client has no credential to ask with.
    let s = SignIn::start(Setup {
        users: users(),
        client: Some(TestClient {
            app_permissions: vec![AppPermission::graph("GroupMember.Read.All")],
            ..TestClient::new(CLIENT_ID, None)
        }),
        credential: Some(String::new()),
        ..setup(group_routes())
    })
    .await;
    let bob = user_token(&s, CALLER, "bob@contoso.example", &["Files.Read"]).await;
    let r = call(&s, "/admins/x", Some(&bob)).await;
    assert_eq!(r.status(), 403);
    denied("no credential", &r.text().await.unwrap());
    assert_eq!(s.idp.token_calls().client_credentials, 0);
}
