//! `[assertion]`: signed identity assertions for upstreams (`assertion.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;

use super::raw::RawAssertion;
use super::{duration, ConfigError};

/// `[assertion]`.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// `iss`: this proxy's URL, as upstreams know it.
    pub issuer: String,
    /// The header that carries the assertion.
    pub header: HeaderName,
    /// How long an assertion lives (at most 5 minutes).
    pub lifetime: Duration,
    /// P-256 keys in PEM; the first signs, all are published. Empty: generated and shared
    /// through the session store.
    pub key_files: Vec<PathBuf>,
    /// How often generated keys are replaced.
    pub rotate_every: Duration,
}

pub(super) fn assertion(
    raw: RawAssertion,
    file: &Path,
    base: &Path,
) -> Result<AssertionConfig, ConfigError> {
    let issuer = raw.issuer.unwrap_or_default();
    let url_ok = url::Url::parse(&issuer)
        .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some());
    if !url_ok {
        return Err(ConfigError::invalid(
            file,
            "assertion.issuer",
            format!("this proxy's URL as upstreams know it, like \"https://portcullis.example.com\", got {issuer:?}"),
        ));
    }
    let header_text = raw
        .header
        .unwrap_or_else(|| "X-Portcullis-Assertion".to_owned());
    let header = HeaderName::from_bytes(header_text.as_bytes())
        .ok()
        .filter(|h| !crate::headers::is_reserved_header(h))
        .ok_or_else(|| {
            ConfigError::invalid(
                file,
                "assertion.header",
                format!("a header name that is not a connection, forwarding, cookie or authorization header, got {header_text:?}"),
            )
        })?;
    let lifetime = duration(file, "assertion.lifetime", raw.lifetime, "2m")?;
    if lifetime < Duration::from_secs(10) || lifetime > Duration::from_secs(300) {
        return Err(ConfigError::invalid(
            file,
            "assertion.lifetime",
            "between \"10s\" and \"5m\"",
        ));
    }
    let rotate_every = duration(file, "assertion.rotate_every", raw.rotate_every, "7d")?;
    if rotate_every < Duration::from_secs(3600) {
        return Err(ConfigError::invalid(
            file,
            "assertion.rotate_every",
            "at least \"1h\" (a new key is published 10 minutes before it signs)",
        ));
    }
    Ok(AssertionConfig {
        issuer,
        header,
        lifetime,
        key_files: raw.key_files.iter().map(|f| base.join(f)).collect(),
        rotate_every,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(issuer: &str, extra: impl FnOnce(&mut RawAssertion)) -> RawAssertion {
        let mut r = RawAssertion {
            issuer: Some(issuer.to_owned()),
            ..RawAssertion::default()
        };
        extra(&mut r);
        r
    }

    fn check(r: RawAssertion) -> Result<AssertionConfig, String> {
        assertion(
            r,
            Path::new("portcullis.toml"),
            Path::new("/etc/portcullis"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_relative_key_files() {
        let c = check(raw("https://portcullis.example.com", |r| {
            r.key_files = vec!["keys/a.pem".into()];
        }))
        .unwrap();
        assert_eq!(c.header.as_str(), "x-portcullis-assertion");
        assert_eq!(c.lifetime, Duration::from_secs(120));
        assert_eq!(c.rotate_every, Duration::from_secs(7 * 86400));
        assert_eq!(c.key_files, [PathBuf::from("/etc/portcullis/keys/a.pem")]);
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let cases: Vec<(RawAssertion, &str)> = vec![
            (raw("", |_| {}), "assertion.issuer"),
            (raw("portcullis.example.com", |_| {}), "assertion.issuer"),
            (raw("ftp://x.example", |_| {}), "assertion.issuer"),
            (
                raw("https://p.example", |r| r.header = Some("Cookie".into())),
                "assertion.header",
            ),
            (
                raw("https://p.example", |r| {
                    r.header = Some("bad header".into())
                }),
                "assertion.header",
            ),
            (
                raw("https://p.example", |r| r.lifetime = Some("10m".into())),
                "assertion.lifetime",
            ),
            (
                raw("https://p.example", |r| r.lifetime = Some("1s".into())),
                "assertion.lifetime",
            ),
            (
                raw("https://p.example", |r| r.rotate_every = Some("5m".into())),
                "assertion.rotate_every",
            ),
        ];
        for (r, key) in cases {
            let e = check(r).unwrap_err();
            assert!(e.contains(key) && e.contains("portcullis.toml"), "{e}");
        }
    }
}
