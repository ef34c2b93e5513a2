//! The HTML the stand-in shows a browser: the account picker (the sign-in page of
//! `portcullis demo`), Entra-style error pages, the signed-out page, and the auto-submitting
//! form of `response_mode=form_post`.
//!
//! Plain pages with inline CSS and no script except the one-line form submit; every
//! interpolated value is escaped.

use super::aadsts::{AadError, Diagnostics};

const STYLE: &str = "\
    body{font-family:Segoe UI,system-ui,sans-serif;background:#f2f2f2;margin:0}\
    main{max-width:440px;margin:8vh auto;background:#fff;padding:44px;\
    box-shadow:0 2px 6px rgba(0,0,0,.2)}\
    h1{font-size:24px;font-weight:600;margin:0 0 16px}p{color:#333}\
    small{color:#666;word-break:break-all}\
    a.user{display:block;padding:12px;margin:8px 0;border:1px solid #ddd;color:#1b1b1b;\
    text-decoration:none}\
    a.user:hover{background:#f2f2f2}a.user span{display:block;color:#666;font-size:13px}";

/// Escapes text for HTML element content and double-quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    )
}

/// One account on the picker: display name, username, and the link that signs in as it.
pub(crate) struct Account {
    pub name: String,
    pub username: String,
    pub href: String,
}

pub(crate) fn picker(accounts: &[Account]) -> String {
    let list: String = accounts
        .iter()
        .map(|a| {
            format!(
                "<a class=\"user\" href=\"{}\">{}<span>{}</span></a>",
                escape(&a.href),
                escape(&a.name),
                escape(&a.username)
            )
        })
        .collect();
    let body = if accounts.is_empty() {
        "<p>This directory has no users.</p>".to_owned()
    } else {
        list
    };
    page(
        "Sign in to your account",
        &format!("<h1>Pick an account</h1><p>Stand-in Entra ID: no password needed.</p>{body}"),
    )
}

/// Entra's "Sorry, but we're having trouble signing you in" page.
pub(crate) fn error(err: &AadError, ids: &Diagnostics) -> String {
    page(
        "Sign in to your account",
        &format!(
            "<h1>Sorry, but we’re having trouble signing you in.</h1>\
             <p>AADSTS{}: {}</p><small>Request Id: {}<br>Correlation Id: {}<br>\
             Timestamp: {}</small>",
            err.code,
            escape(&err.message),
            escape(&ids.trace_id),
            escape(&ids.correlation_id),
            escape(&ids.timestamp)
        ),
    )
}

pub(crate) fn signed_out() -> String {
    page(
        "Sign out",
        "<h1>You signed out of your account</h1>\
         <p>It’s a good idea to close all browser windows.</p>",
    )
}

/// An HTML form that posts `params` to `action` as soon as it loads (OAuth 2.0 Form Post
/// Response Mode).
pub(crate) fn form_post(action: &str, params: &[(String, String)]) -> String {
    let inputs: String = params
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    format!(
        "<!doctype html><html><head><title>Working...</title></head>\
         <body onload=\"document.forms[0].submit()\"><form method=\"POST\" action=\"{}\">{inputs}\
         <noscript><p>Script is disabled. Click Submit to continue.</p>\
         <input type=\"submit\" value=\"Submit\"></noscript></form></body></html>",
        escape(action)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let html = picker(&[Account {
            name: "<b>".into(),
            username: "a\"b".into(),
            href: "?x=1&y=2".into(),
        }]);
        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("a&quot;b"));
        assert!(html.contains("?x=1&amp;y=2"));
        let form = form_post("https://x/cb", &[("code".into(), "\"><script>".into())]);
        assert!(!form.contains("\"><script>"));
    }
}
