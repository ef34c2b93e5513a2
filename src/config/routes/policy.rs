//! A route's policy keys: who may use it (`allowed_*`, `require_claims`) and, on routes that
//! take access tokens, what the calling app must be and hold (`allowed_client_apps`,
//! `required_scopes`).

use std::path::Path;

use super::{AuthMode, PolicySpec};
use crate::config::raw::RawRoute;
use crate::config::ConfigError;

pub(super) fn policy(
    r: &RawRoute,
    auth: AuthMode,
    file: &Path,
    key: &dyn Fn(&str) -> String,
) -> Result<PolicySpec, ConfigError> {
    let ids = |k: &str, list: &Option<Vec<String>>| -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for v in list.iter().flatten() {
            let v = v.trim().to_ascii_lowercase();
            if !crate::config::auth::is_guid(&v) {
                return Err(ConfigError::invalid(
                    file,
                    key(k),
                    format!("object IDs (GUIDs), not names; got {v:?}"),
                ));
            }
            out.push(v);
        }
        Ok(out)
    };
    let mut roles = Vec::new();
    for v in r.allowed_roles.iter().flatten() {
        if v.trim().is_empty() {
            return Err(ConfigError::invalid(
                file,
                key("allowed_roles"),
                "app role values, like \"Wiki.Edit\"",
            ));
        }
        roles.push(v.trim().to_owned());
    }
    let mut email_domains = Vec::new();
    for v in r.allowed_email_domains.iter().flatten() {
        let d = v.trim().trim_start_matches('@').to_ascii_lowercase();
        if !super::valid_host_pattern(&d) || d.starts_with('*') {
            return Err(ConfigError::invalid(
                file,
                key("allowed_email_domains"),
                format!("domains like \"example.com\", got {v:?}"),
            ));
        }
        email_domains.push(d);
    }
    let mut claims = Vec::new();
    for (claim, values) in &r.require_claims {
        if claim.trim().is_empty() || values.is_empty() {
            return Err(ConfigError::invalid(
                file,
                key(&format!("require_claims.{claim}")),
                "a claim name with a non-empty list of accepted values",
            ));
        }
        claims.push((claim.trim().to_owned(), values.clone()));
    }
    let (scopes, client_apps) = caller(r, auth, file, key)?;
    Ok(PolicySpec {
        scopes,
        client_apps,
        groups: ids("allowed_groups", &r.allowed_groups)?,
        roles,
        tenants: ids("allowed_tenants", &r.allowed_tenants)?,
        users: ids("allowed_users", &r.allowed_users)?,
        email_domains,
        claims,
    })
}

/// `required_scopes` and `allowed_client_apps`: they judge the access token a client app
/// presents, so only routes that take one may set them. On a `login_or_bearer` route they
/// apply to requests with a token; a browser session there has no calling app to judge.
fn caller(
    r: &RawRoute,
    auth: AuthMode,
    file: &Path,
    key: &dyn Fn(&str) -> String,
) -> Result<(Vec<String>, Vec<String>), ConfigError> {
    let takes_tokens = matches!(auth, AuthMode::Bearer | AuthMode::LoginOrBearer);
    let mut scopes = Vec::new();
    for v in r.required_scopes.iter().flatten() {
        let v = v.trim();
        if v.is_empty() || v.contains(char::is_whitespace) || v.contains('/') {
            return Err(ConfigError::invalid(
                file,
                key("required_scopes"),
                format!(
                    "scope names as the token's `scp` claim lists them, like \"Files.Read\" (not \"api://…/Files.Read\"), got {v:?}"
                ),
            ));
        }
        scopes.push(v.to_owned());
    }
    let mut client_apps = Vec::new();
    for v in r.allowed_client_apps.iter().flatten() {
        let v = v.trim().to_ascii_lowercase();
        if !crate::config::auth::is_guid(&v) {
            return Err(ConfigError::invalid(
                file,
                key("allowed_client_apps"),
                format!("application (client) IDs (GUIDs) of the apps that may call, got {v:?}"),
            ));
        }
        client_apps.push(v);
    }
    for (k, set) in [
        ("required_scopes", !scopes.is_empty()),
        ("allowed_client_apps", !client_apps.is_empty()),
    ] {
        if set && !takes_tokens {
            return Err(ConfigError::invalid(
                file,
                key(k),
                format!(
                    "to be set only on routes with auth = \"bearer\" or \"login_or_bearer\": it judges the access token a client app presents, and this route has auth = \"{}\"",
                    auth.as_str()
                ),
            ));
        }
    }
    Ok((scopes, client_apps))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::routes::parse;
    use crate::config::ConfigError;

    const APP: &str = "6731DE76-14a6-49ae-97bc-6eba6914391e";

    fn route(auth: &str, extra: &str) -> String {
        format!(
            "[[route]]\nname = \"api\"\nhost = \"api.example.com\"\nupstream = \"http://127.0.0.1:3000\"\nauth = \"{auth}\"\n{extra}\n"
        )
    }

    fn invalid(text: &str) -> (String, String) {
        match parse(text, Path::new("/etc/portcullis/routes.toml")) {
            Err(ConfigError::Invalid { key, expected, .. }) => (key, expected),
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn bearer_routes_read_required_scopes_and_allowed_client_apps() {
        let text = route(
            "bearer",
            &format!("required_scopes = [\" Files.Read \", \"Files.ReadWrite\"]\nallowed_client_apps = [\"{APP}\"]"),
        );
        let routing = parse(&text, Path::new("routes.toml")).unwrap();
        let policy = &routing.routes[0].policy;
        assert_eq!(policy.scopes, ["Files.Read", "Files.ReadWrite"]);
        assert_eq!(policy.client_apps, [APP.to_ascii_lowercase()]);
        let both = route("login_or_bearer", "required_scopes = [\"Files.Read\"]");
        let routing = parse(&both, Path::new("routes.toml")).unwrap();
        assert_eq!(routing.routes[0].policy.scopes, ["Files.Read"]);
    }

    #[test]
    fn token_requirements_are_refused_where_no_token_is_read() {
        for auth in ["login", "public"] {
            for (key, line) in [
                (
                    "required_scopes",
                    "required_scopes = [\"Files.Read\"]".to_owned(),
                ),
                (
                    "allowed_client_apps",
                    format!("allowed_client_apps = [\"{APP}\"]"),
                ),
            ] {
                let (k, expected) = invalid(&route(auth, &line));
                assert_eq!(k, format!("route \"api\" (line 1): {key}"), "{auth}");
                assert!(expected.contains("auth = \"bearer\""), "{expected}");
                assert!(
                    expected.contains(&format!("auth = \"{auth}\"")),
                    "{expected}"
                );
            }
        }
    }

    #[test]
    fn scopes_are_short_names_and_client_apps_are_guids() {
        for bad in [
            "\"api://x/Files.Read\"",
            "\"Files.Read Files.Write\"",
            "\"\"",
        ] {
            let (k, expected) = invalid(&route("bearer", &format!("required_scopes = [{bad}]")));
            assert!(k.ends_with("required_scopes"), "{k}");
            assert!(expected.contains("scp"), "{expected}");
        }
        let (k, expected) = invalid(&route("bearer", "allowed_client_apps = [\"my-app\"]"));
        assert!(k.ends_with("allowed_client_apps"), "{k}");
        assert!(expected.contains("client) IDs"), "{expected}");
    }
}
