//! `[telemetry]`: OpenTelemetry trace export, and its sampler (`OTEL_*` names).

use std::path::Path;

use super::raw::RawTelemetry;
use super::ConfigError;

/// `[telemetry]`: OpenTelemetry trace export.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL (`http://otel-collector:4318`); traces go to `<it>/v1/traces`.
    /// `None`: no export (W3C `traceparent` from clients still reaches upstreams unchanged).
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    /// Which traces are recorded and exported (`sampler`, `sampler_arg`).
    pub sampler: Sampler,
}

/// The OpenTelemetry samplers of `OTEL_TRACES_SAMPLER`, by the same names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// Follow the client's `traceparent` sampled flag when there is one (`parentbased_*`).
    pub parent_based: bool,
    /// The share of new traces recorded: 1.0 (`always_on`), 0.0 (`always_off`), or the
    /// `traceidratio` argument.
    pub ratio: f64,
}

impl Default for Sampler {
    /// `parentbased_always_on`, the SDK's default.
    fn default() -> Sampler {
        Sampler {
            parent_based: true,
            ratio: 1.0,
        }
    }
}

/// Validates `[telemetry]`.
pub(super) fn telemetry(raw: RawTelemetry, file: &Path) -> Result<TelemetryConfig, ConfigError> {
    let otlp_endpoint = match raw.otlp_endpoint.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) => match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => {
                Some(u.trim_end_matches('/').to_owned())
            }
            _ => {
                return Err(ConfigError::invalid(
                    file,
                    "telemetry.otlp_endpoint",
                    format!("an OTLP/HTTP URL like \"http://otel-collector:4318\", got {u:?}"),
                ))
            }
        },
    };
    Ok(TelemetryConfig {
        sampler: sampler(&raw, file)?,
        otlp_endpoint,
        service_name: raw
            .service_name
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "portcullis".to_owned()),
    })
}

/// `telemetry.sampler` and `telemetry.sampler_arg` (`OTEL_TRACES_SAMPLER`, `…_ARG`).
fn sampler(raw: &RawTelemetry, file: &Path) -> Result<Sampler, ConfigError> {
    let name = raw.sampler.as_deref().map(str::trim).unwrap_or("");
    let (parent_based, kind) = match name.strip_prefix("parentbased_") {
        Some(k) => (true, k),
        None if name.is_empty() => (true, "always_on"),
        None => (false, name),
    };
    let ratio = match kind {
        "always_on" => 1.0,
        "always_off" => 0.0,
        "traceidratio" => match raw.sampler_arg.as_deref().map(str::trim) {
            None | Some("") => 1.0,
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    return Err(ConfigError::invalid(
                        file,
                        "telemetry.sampler_arg",
                        format!("a ratio from 0 to 1 like \"0.25\", got {a:?}"),
                    ))
                }
            },
        },
        _ => {
            return Err(ConfigError::invalid(
                file,
                "telemetry.sampler",
                format!(
                    "one of always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off, parentbased_traceidratio; got {name:?}"
                ),
            ))
        }
    };
    Ok(Sampler {
        parent_based,
        ratio,
    })
}
