//! Which source a configuration error belongs to: the file, or a `PORTCULLIS__*` variable.
//!
//! A value set in the environment is reported under the variable's name: the operator looks
//! for it in a compose file or a pod spec, not in `portcullis.toml`.

use std::path::Path;

use super::{ConfigError, EnvOverrides};

/// An error of the `config` crate (reading or deserializing): its value's origin is the
/// variable's name when the value came from the environment.
pub(super) fn from_config(file: &Path, env: &EnvOverrides, e: config::ConfigError) -> ConfigError {
    let found = match &e {
        config::ConfigError::Type {
            origin: Some(origin),
            unexpected,
            expected,
            key,
        } => env.var_named(origin).map(|var| {
            (
                var.to_owned(),
                key.clone().unwrap_or_default(),
                format!("expected {expected}, got {unexpected}"),
            )
        }),
        config::ConfigError::At { error, origin, key } => {
            let key = key.clone().unwrap_or_default();
            let message = error.to_string();
            match origin.as_deref().and_then(|o| env.var_named(o)) {
                Some(var) => Some((var.to_owned(), key, message)),
                // `deny_unknown_fields` names the field and, as the key, its section.
                None => unknown_field(&message).and_then(|field| {
                    let full = if key.is_empty() {
                        field.to_owned()
                    } else {
                        format!("{key}.{field}")
                    };
                    env.var_for(&full).map(|var| {
                        (
                            var.to_owned(),
                            full.clone(),
                            "no such key (see docs/config.md)".to_owned(),
                        )
                    })
                }),
            }
        }
        config::ConfigError::Message(message) => unknown_field(message).and_then(|field| {
            env.var_for(field).map(|var| {
                (
                    var.to_owned(),
                    field.to_owned(),
                    "no such section".to_owned(),
                )
            })
        }),
        _ => None,
    };
    match found {
        Some((var, key, message)) => ConfigError::Env { var, key, message },
        None => ConfigError::Load {
            file: file.to_owned(),
            error: Box::new(e),
        },
    }
}

/// A validation error about a key the environment set is reported under the variable.
pub(super) fn name_variable(e: ConfigError, env: &EnvOverrides) -> ConfigError {
    match e {
        ConfigError::Invalid {
            file,
            key,
            expected,
        } => match env.var_for(&key) {
            Some(var) => ConfigError::Env {
                var: var.to_owned(),
                key,
                message: format!("expected {expected}"),
            },
            None => ConfigError::Invalid {
                file,
                key,
                expected,
            },
        },
        other => other,
    }
}

/// The field of serde's "unknown field `x`, expected …".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}
