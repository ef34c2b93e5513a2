//! `[pages]`: the deployment's name, logo and support contact on the pages the proxy answers
//! with itself (errors, access denied, sign-out).

use std::path::Path;

use super::raw::RawPages;
use super::ConfigError;

/// `[pages]`, validated: every value is safe to place in an HTML attribute once escaped, and
/// links go to https, a same-site path or `mailto:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagesConfig {
    /// Shown at the top of every page and in its title (`"Portcullis"` by default).
    pub product_name: String,
    /// An `https://` URL or a path on the same site; `None`: no logo.
    pub logo_url: Option<String>,
    /// Where "Contact support" leads: an `https://` URL or `mailto:` the given address.
    pub support_href: Option<String>,
}

impl Default for PagesConfig {
    fn default() -> PagesConfig {
        PagesConfig {
            product_name: "Portcullis".to_owned(),
            logo_url: None,
            support_href: None,
        }
    }
}

pub(super) fn pages(raw: RawPages, file: &Path) -> Result<PagesConfig, ConfigError> {
    let bad = |key: &str, expected: String| ConfigError::invalid(file, key, expected);
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let product_name = nonempty(raw.product_name).unwrap_or_else(|| "Portcullis".to_owned());
    if product_name.chars().count() > 80 || product_name.chars().any(char::is_control) {
        return Err(bad(
            "pages.product_name",
            "a name of at most 80 characters on one line".to_owned(),
        ));
    }
    let logo_url = match nonempty(raw.logo_url) {
        None => None,
        Some(u) if https_url(&u) || same_site_path(&u) => Some(u),
        Some(u) => {
            return Err(bad(
                "pages.logo_url",
                format!("an https:// URL or a path like \"/static/logo.svg\", got {u:?}"),
            ))
        }
    };
    let support_href = match nonempty(raw.support) {
        None => None,
        Some(s) if https_url(&s) => Some(s),
        Some(s) if email(&s) => Some(format!("mailto:{s}")),
        Some(s) => {
            return Err(bad(
                "pages.support",
                format!("an https:// URL or an email address, got {s:?}"),
            ))
        }
    };
    Ok(PagesConfig {
        product_name,
        logo_url,
        support_href,
    })
}

fn https_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some())
}

/// `/x`, but not `//host` (another site) or a backslash that browsers read as `/`.
fn same_site_path(s: &str) -> bool {
    s.starts_with('/') && !s.starts_with("//") && !s.contains(['\\', '"', '<', '>'])
}

fn email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !s.contains(|c: char| c.is_whitespace() || "<>\"'(),;:\\[]?&=/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: Option<&str>, logo: Option<&str>, support: Option<&str>) -> RawPages {
        RawPages {
            product_name: name.map(str::to_owned),
            logo_url: logo.map(str::to_owned),
            support: support.map(str::to_owned),
        }
    }

    #[test]
    fn branding_is_read_and_checked() {
        let f = Path::new("p.toml");
        assert_eq!(
            pages(raw(None, None, None), f).unwrap(),
            PagesConfig::default()
        );
        let p = pages(
            raw(
                Some("Contoso Gate"),
                Some("https://cdn.contoso.example/logo.svg"),
                Some("help@contoso.example"),
            ),
            f,
        )
        .unwrap();
        assert_eq!(p.product_name, "Contoso Gate");
        assert_eq!(
            p.support_href.as_deref(),
            Some("mailto:help@contoso.example")
        );
        let p = pages(
            raw(None, Some("/logo.png"), Some("https://help.example")),
            f,
        )
        .unwrap();
        assert_eq!(p.logo_url.as_deref(), Some("/logo.png"));
        assert_eq!(p.support_href.as_deref(), Some("https://help.example"));
        for (logo, support, key) in [
            (Some("http://cdn.example/l.svg"), None, "pages.logo_url"),
            (Some("//evil.example/l.svg"), None, "pages.logo_url"),
            (Some("javascript:alert(1)"), None, "pages.logo_url"),
            (None, Some("javascript:alert(1)"), "pages.support"),
            (None, Some("call us"), "pages.support"),
        ] {
            match pages(raw(None, logo, support), f) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{logo:?} {support:?}: {other:?}"),
            }
        }
    }
}
