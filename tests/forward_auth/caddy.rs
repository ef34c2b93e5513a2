//! Caddy `forward_auth` → Portcullis `/.auth/verify` → the app, configured as
//! docs/forward-auth.md shows.

use super::ingress::Ingress;
use super::*;
use crate::upstream::Upstream;

/// The Caddyfile of docs/forward-auth.md, for the test's ports and files.
fn caddyfile(portcullis: u16, app: &str) -> String {
    let transport = "transport http {\n\t\t\t\ttls_server_name app.example.test\n\t\t\t\t\
                     tls_trusted_ca_certs {dir}/ca.pem\n\t\t\t}";
    format!(
        r#"{{
	admin off
	auto_https off
	storage file_system {{dir}}/data
}}

http://app.example.test:{{port}} {{
	bind 127.0.0.1

	# Sign-in, callback and sign-out are Portcullis's own.
	handle /.auth/* {{
		reverse_proxy https://127.0.0.1:{portcullis} {{
			{transport}
		}}
	}}

	handle {{
		# `route` keeps this order: Caddy would otherwise run request_header after
		# forward_auth, and delete what it copied.
		route {{
			# A client's own identity headers never reach the app.
			request_header -X-Auth-Request-User
			request_header -X-Auth-Request-Email
			request_header -X-Auth-Request-Oid
			request_header -X-Auth-Request-Groups
			forward_auth https://127.0.0.1:{portcullis} {{
				uri /.auth/verify
				copy_headers X-Auth-Request-User X-Auth-Request-Email X-Auth-Request-Oid X-Auth-Request-Groups
				{transport}
			}}
			reverse_proxy {app}
		}}
	}}
}}
"#
    )
}

#[tokio::test]
async fn caddy_forward_auth_allows_denies_and_sends_browsers_to_sign_in() {
    let s = SignIn::start(setup()).await;
    let app = Upstream::start("behind-caddy").await;
    let caddy = Ingress::start(
        "caddy",
        &[
            "run",
            "--adapter",
            "caddyfile",
            "--config",
            "{dir}/Caddyfile",
        ],
        &[
            ("Caddyfile", caddyfile(s.proxy.https.port(), &app.url())),
            ("ca.pem", s.proxy.pki.ca_pem.clone()),
        ],
    );
    let cookie = session_cookie(&s).await;
    let http = caddy.client();

    caddy.assert_gate(&cookie, "behind-caddy").await;

    // No session, a browser navigation: Portcullis's redirect to Entra, passed on by Caddy
    // with the pending sign-in cookie, for the callback on this host.
    let r = http
        .get(caddy.url("/docs/b"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", caddy.log());
    let entra = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(entra.starts_with(&s.idp.base_url()), "{entra}");
    assert!(
        entra.contains("redirect_uri=https%3A%2F%2Fapp.example.test"),
        "{entra}"
    );
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("__Host-portcullis"));
    // The sign-in endpoint on the app's host is Portcullis's.
    let r = http
        .get(caddy.url("/.auth/login?rd=/docs/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", caddy.log());
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(&s.idp.base_url()));
    // An API call: 401.
    let r = http.get(caddy.url("/docs/b")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
