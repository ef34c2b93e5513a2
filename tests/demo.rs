//! `portcullis demo` as a newcomer runs it: it prints where to go, the demo users can sign in,
//! the group-limited route tells them apart, and Ctrl-C stops it with exit status 0.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::browser::Browser;
use crate::support::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

#[tokio::test]
async fn demo_signs_in_demo_users_and_stops_on_ctrl_c() {
    let (port, admin) = (free_port(), free_port());
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "demo",
            "--port",
            &port.to_string(),
            "--admin-port",
            &admin.to_string(),
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = format!("https://localhost:{port}/");
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = out.next_line().await {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("Ctrl-C stops") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(ready, Ok(true)),
        "the demo never said it was ready: {printed}"
    );
    assert!(printed.contains(&format!("Open {url}")), "{printed}");
    for user in [
        "alice@demo.example",
        "bob@demo.example",
        "chloe@demo.example",
    ] {
        assert!(printed.contains(user), "{printed}");
    }

    let proxy: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (mut bob, page) = sign_in(proxy, &url, "bob@demo.example").await;
    assert!(page.contains("Hello, Bob Brown"), "{page}");
    assert!(page.contains("x-auth-request-oid"));
    assert_eq!(bob.get(&format!("{url}admin")).await.status, 200);
    let me = bob.api(&format!("{url}.auth/me")).await.json();
    assert_eq!(me[0]["user_id"], "bob@demo.example");

    let (mut alice, page) = sign_in(proxy, &url, "alice@demo.example").await;
    assert!(page.contains("Hello, Alice Anderson"));
    let denied = alice.get(&format!("{url}admin")).await;
    assert_eq!(denied.status, 403);
    // No other spelling of /admin reaches the whoami page for Alice either.
    for spelling in [
        "ADMIN",
        "Admin/x",
        "admin%2fx",
        "admin;x",
        "%61dmin",
        "admin%00/x",
        "/admin",
        "admin//",
        "adm%C4%B1n",
        "admin%252f",
    ] {
        let hop = alice.get(&format!("{url}{spelling}")).await;
        assert!(
            hop.status == 400 || hop.status == 403,
            "/{spelling}: {} {}",
            hop.status,
            hop.body
        );
        assert!(
            !hop.body.contains("Hello, Alice"),
            "/{spelling} reached whoami"
        );
    }
    let (_, page) = sign_in(proxy, &url, "chloe@demo.example").await;
    assert!(page.contains("Hello, Chloé Núñez"), "{page}");

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the demo stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

/// Opens the demo, finds `user` on the stand-in's account picker, and signs in as them.
async fn sign_in(proxy: std::net::SocketAddr, url: &str, user: &str) -> (Browser, String) {
    let mut b = Browser::accepting_any_certificate(proxy, &["localhost"]);
    let hops = b.navigate(url).await;
    let picker = hops.last().unwrap();
    assert_eq!(picker.status, 200);
    assert!(picker.body.contains(user), "{}", picker.body);
    let hint: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
    let hops = b
        .navigate(&format!("{url}.auth/login?rd=%2F&login_hint={hint}"))
        .await;
    let page = hops.last().unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    let body = page.body.clone();
    (b, body)
}
