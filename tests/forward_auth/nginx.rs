//! nginx `auth_request` → Portcullis `/.auth/verify` → the app, configured as docs/forward-auth.md
//! shows.

use super::ingress::Ingress;
use super::*;
use crate::upstream::Upstream;

/// The nginx site of docs/forward-auth.md, for the test's ports and files.
fn nginx_conf(portcullis: u16, app: &str) -> String {
    let tls = "proxy_ssl_server_name on;\n        proxy_ssl_name app.example.test;\n        \
               proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate {dir}/ca.pem;";
    format!(
        r#"
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
daemon off;
# One process: the test stops nginx by killing its child, which would leave a worker behind.
master_process off;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    server {{
        listen 127.0.0.1:{{port}};
        server_name app.example.test;

        # Sign-in, callback and sign-out are Portcullis's own.
        location /.auth/ {{
            proxy_pass https://127.0.0.1:{portcullis};
            {tls}
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        location = /_portcullis_verify {{
            internal;
            proxy_pass https://127.0.0.1:{portcullis}/.auth/verify;
            {tls}
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        location @sign_in {{
            return 302 /.auth/login?rd=$request_uri;
        }}

        location / {{
            auth_request /_portcullis_verify;
            error_page 401 = @sign_in;
            auth_request_set $user $upstream_http_x_auth_request_user;
            auth_request_set $email $upstream_http_x_auth_request_email;
            auth_request_set $oid $upstream_http_x_auth_request_oid;
            auth_request_set $groups $upstream_http_x_auth_request_groups;
            # Always set (an empty value removes the header): a client's own copy never
            # reaches the app.
            proxy_set_header X-Auth-Request-User $user;
            proxy_set_header X-Auth-Request-Email $email;
            proxy_set_header X-Auth-Request-Oid $oid;
            proxy_set_header X-Auth-Request-Groups $groups;
            proxy_pass {app};
        }}
    }}
}}
"#
    )
}

#[tokio::test]
async fn nginx_auth_request_allows_denies_and_sends_browsers_to_sign_in() {
    let s = SignIn::start(setup()).await;
    let app = Upstream::start("behind-nginx").await;
    let nginx = Ingress::start(
        "nginx",
        &["-p", "{dir}", "-c", "{dir}/nginx.conf"],
        &[
            ("nginx.conf", nginx_conf(s.proxy.https.port(), &app.url())),
            ("ca.pem", s.proxy.pki.ca_pem.clone()),
        ],
    );
    let cookie = session_cookie(&s).await;
    let http = nginx.client();

    nginx.assert_gate(&cookie, "behind-nginx").await;

    // No session: nginx sends the browser to Portcullis's sign-in on the same host, which
    // sends it on to Entra.
    let r = http
        .get(nginx.url("/docs/b"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.ends_with("/.auth/login?rd=/docs/b"), "{to}");
    let r = http
        .get(nginx.url("/.auth/login?rd=/docs/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", nginx.log());
    let entra = r.headers()["location"].to_str().unwrap();
    assert!(entra.starts_with(&s.idp.base_url()), "{entra}");
}
