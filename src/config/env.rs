//! Environment overrides: `PORTCULLIS__SECTION__KEY` sets `section.key` of the main file.
//!
//! The `config` crate's own `Environment` source, with `try_parsing`, guesses each value's
//! type: `00042` became the integer 42, `1e3` the float 1000, `true` a boolean, before the
//! value reached a string key such as `oidc.client_id` or `redis.password`. Here every value
//! stays the string it was; numeric and boolean keys parse it when they are read, as they
//! would a quoted value in the file. Only the list keys split on commas.
//!
//! Each value's origin is its variable's name, so an error about it names the variable.
//!
//! The OpenTelemetry SDK's standard variables set the `[telemetry]` keys the same way
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`), unless the key's own `PORTCULLIS__TELEMETRY__*` variable is set.

use std::collections::BTreeMap;

use config::{Map, Source, Value, ValueKind};

/// The prefix of environment overrides: `PORTCULLIS__SERVER__LISTEN` sets `server.listen`.
pub const ENV_PREFIX: &str = "PORTCULLIS";

/// The OpenTelemetry variables Portcullis honours, and the key each sets.
const OTEL_VARS: &[(&str, &str)] = &[
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint"),
    ("OTEL_SERVICE_NAME", "telemetry.service_name"),
    ("OTEL_TRACES_SAMPLER", "telemetry.sampler"),
    ("OTEL_TRACES_SAMPLER_ARG", "telemetry.sampler_arg"),
];

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "server.trusted_proxies",
    "oidc.scopes",
    "oidc.allowed_tenants",
    "oidc.audiences",
    "session.secrets",
    "assertion.key_files",
];

/// The `PORTCULLIS__*` variables of one environment, keyed by the dotted key each sets.
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    /// dotted key → (variable name, value)
    vars: BTreeMap<String, (String, String)>,
}

/// A `PORTCULLIS__*` variable whose value is not valid Unicode.
#[derive(Debug)]
pub struct NotUnicode(pub String);

impl EnvOverrides {
    /// The process's environment.
    pub fn from_process() -> Result<EnvOverrides, NotUnicode> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            // A name that is not Unicode cannot carry our prefix.
            let Ok(name) = name.into_string() else {
                continue;
            };
            if key_of(&name).is_none() && !OTEL_VARS.iter().any(|(v, _)| *v == name) {
                continue;
            }
            match value.into_string() {
                Ok(value) => vars.push((name, value)),
                Err(_) => return Err(NotUnicode(name)),
            }
        }
        Ok(EnvOverrides::from_vars(vars))
    }

    /// Given variables (tests); names without the prefix are ignored. An empty value is the
    /// empty string, as any other value is kept as given.
    pub fn from_vars<I, K, V>(vars: I) -> EnvOverrides
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut out = BTreeMap::new();
        let mut otel = Vec::new();
        for (name, value) in vars {
            let (name, value) = (name.into(), value.into());
            if let Some(key) = key_of(&name) {
                out.insert(key, (name, value));
            } else if let Some((_, key)) = OTEL_VARS.iter().find(|(v, _)| *v == name) {
                otel.push((key.to_string(), (name, value)));
            }
        }
        for (key, var) in otel {
            out.entry(key).or_insert(var);
        }
        EnvOverrides { vars: out }
    }

    /// The variable that set `key`, or an element of it (`oidc.allowed_tenants[1]`), if any.
    pub fn var_for(&self, key: &str) -> Option<&str> {
        let base = key.split('[').next().unwrap_or(key);
        self.vars.get(base).map(|(name, _)| name.as_str())
    }

    /// The variable whose origin string is `origin`, as `config` reports it in errors.
    pub fn var_named(&self, origin: &str) -> Option<&str> {
        self.vars
            .values()
            .map(|(name, _)| name.as_str())
            .find(|name| *name == origin)
    }
}

/// `PORTCULLIS__OIDC__CLIENT_ID` → `oidc.client_id`; `None` without the prefix.
fn key_of(name: &str) -> Option<String> {
    let rest = name.get(ENV_PREFIX.len()..)?;
    if !name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX) {
        return None;
    }
    let rest = rest.strip_prefix("__")?;
    if rest.is_empty() {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

impl Source for EnvOverrides {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let mut m = Map::new();
        for (key, (name, value)) in &self.vars {
            let origin = Some(name);
            let kind = if LIST_KEYS.contains(&key.as_str()) {
                ValueKind::Array(
                    value
                        .split(',')
                        .map(|s| Value::new(origin, ValueKind::String(s.to_owned())))
                        .collect(),
                )
            } else {
                ValueKind::String(value.clone())
            };
            m.insert(key.clone(), Value::new(origin, kind));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests;
