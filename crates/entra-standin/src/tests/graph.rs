//! Groups overage, the Graph emulation, and logout.

use reqwest::StatusCode;

use super::*;

async fn graph_get(url: &str, bearer: &str) -> (StatusCode, serde_json::Value) {
    let resp = http().get(url).bearer_auth(bearer).send().await.unwrap();
    let status = resp.status();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn overage_replaces_groups_and_graph_pages_them() {
    let si = start(StandInConfig {
        groups_overage_threshold: 3,
        ..config()
    })
    .await;
    let groups: Vec<String> = (0..5).map(|i| format!("group-{i}")).collect();
    si.set_user_groups(ALICE, groups.clone());
    let (_, body) = redeem(&si, &code(&si, &[]).await, VERIFIER).await;
    let id = peek(body["id_token"].as_str().unwrap());
    let alice = si
        .users()
        .into_iter()
        .find(|u| u.username == ALICE)
        .unwrap();
    assert!(id.get("groups").is_none());
    assert_eq!(id["_claim_names"]["groups"], "src1");
    assert_eq!(
        id["_claim_sources"]["src1"]["endpoint"],
        format!(
            "https://graph.windows.net/{}/users/{}/getMemberObjects",
            si.tenant_id(),
            alice.oid
        )
    );
    let expected = si.id_token_claims(&alice, CLIENT, None);
    assert_eq!(expected["_claim_names"], id["_claim_names"]);

    let access = body["access_token"].as_str().unwrap();
    let mut url = format!(
        "{}/v1.0/me/transitiveMemberOf?$select=id&$top=2",
        si.graph_url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, page) = graph_get(&url, access).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for item in page["value"].as_array().unwrap() {
            assert_eq!(item["@odata.type"], "#microsoft.graph.group");
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&si.graph_url()) && next.contains("$skiptoken="));
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!((seen, pages), (groups, 3));
    assert_eq!(si.graph_calls(), 3);

    let cast = format!(
        "{}/v1.0/me/transitiveMemberOf/microsoft.graph.group",
        si.graph_url()
    );
    let (status, page) = graph_get(&cast, access).await;
    assert_eq!(
        (status, page["value"].as_array().unwrap().len()),
        (StatusCode::OK, 5)
    );
}

#[tokio::test]
async fn graph_refuses_tokens_it_did_not_issue_for_graph() {
    let si = start(config()).await;
    let url = format!("{}/v1.0/me/transitiveMemberOf", si.graph_url());
    let forged = si.mint_token(
        serde_json::json!({"aud": "00000003-0000-0000-c000-000000000000"}),
        None,
    );
    let (status, body) = graph_get(&url, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let scope = format!("openid api://{CLIENT}/read");
    let (_, body) = redeem(&si, &code(&si, &[("scope", &scope)]).await, VERIFIER).await;
    let (status, _) = graph_get(&url, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_redirects_only_to_registered_uris_and_is_recorded() {
    let si = start(config()).await;
    let (_, body) = redeem(&si, &code(&si, &[]).await, VERIFIER).await;
    let id_token = body["id_token"].as_str().unwrap();
    let hint = peek(id_token)["login_hint"].as_str().unwrap().to_owned();
    let logout = format!("{}/{}/oauth2/v2.0/logout", si.base_url(), si.tenant_id());

    let url = reqwest::Url::parse_with_params(
        &logout,
        [
            ("post_logout_redirect_uri", LOGOUT_REDIRECT),
            ("logout_hint", hint.as_str()),
            ("state", "bye"),
            ("id_token_hint", id_token),
        ],
    )
    .unwrap();
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        resp.headers()["location"],
        format!("{LOGOUT_REDIRECT}?state=bye")
    );

    let url = reqwest::Url::parse_with_params(
        &logout,
        [
            ("post_logout_redirect_uri", "https://evil.example/"),
            ("client_id", CLIENT),
        ],
    )
    .unwrap();
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("signed out"));

    let records = si.logouts();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].logout_hint.as_deref(), Some(hint.as_str()));
    assert_eq!(records[0].state.as_deref(), Some("bye"));
    assert_eq!(records[0].client_id.as_deref(), Some(CLIENT));
    assert_eq!(records[0].id_token_hint.as_deref(), Some(id_token));
    assert_eq!(
        records[1].post_logout_redirect_uri.as_deref(),
        Some("https://evil.example/")
    );
}

#[tokio::test]
async fn graph_pages_on_the_server_side_whatever_top_asks_for() {
    let si = start(StandInConfig {
        groups_overage_threshold: 3,
        graph_page_limit: 2,
        ..config()
    })
    .await;
    let groups: Vec<String> = (0..5).map(|i| format!("group-{i}")).collect();
    si.set_user_groups(ALICE, groups.clone());
    let (_, body) = redeem(&si, &code(&si, &[]).await, VERIFIER).await;
    let access = body["access_token"].as_str().unwrap();
    let mut next = Some(format!(
        "{}/v1.0/me/transitiveMemberOf?$select=id&$top=999",
        si.graph_url()
    ));
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    while let Some(url) = next.take() {
        let (status, page) = graph_get(&url, access).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["value"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!((sizes, seen), (vec![2, 2, 1], groups));
}
