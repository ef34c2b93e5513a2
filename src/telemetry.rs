//! Logging and tracing set-up: human-readable text or one JSON object per line, filtered by
//! `log.level` (or `RUST_LOG`, which wins when set), and — with `telemetry.otlp_endpoint` —
//! OpenTelemetry spans exported over OTLP/HTTP.
//!
//! With an exporter, the filter always admits Portcullis's request spans (`portcullis::trace`
//! at INFO), whatever the log level, so `level = "warn"` quiets the logs without losing
//! traces. The filter is global, not per layer: with the exporter behind a per-layer filter
//! beside the log layer, request spans were created but never exported (the regression test
//! is `traces::the_binary_exports_spans_to_the_configured_otlp_endpoint`). Spans are batched
//! on a background thread; [`Guard`] flushes them at exit.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogConfig, LogFormat, Sampler, TelemetryConfig};

/// The tracing target of request spans (see `trace.rs`).
pub const SPAN_TARGET: &str = "portcullis::trace";

/// Flushes and stops the span exporter when dropped. Drop it outside the async runtime.
#[must_use]
pub struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("portcullis: flushing traces: {e}");
            }
        }
    }
}

fn filter(config: &LogConfig) -> EnvFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| filter_of(&v))
        .or_else(|| filter_of(&config.level))
        .unwrap_or_else(|| quiet_client_hellos(EnvFilter::new("info")))
}

/// Where rustls reports what it made of a client's handshake messages: an IP address sent as
/// the server name, a malformed or duplicate name. Any client can write one such warning per
/// connection, and the operator can do nothing about it, so these stay at `error` unless the
/// filter has a directive for `rustls` itself.
const CLIENT_HELLO_DIRECTIVE: &str = "rustls::msgs=error";

/// The filter `spec` describes, `None` if it is not one.
fn filter_of(spec: &str) -> Option<EnvFilter> {
    let filter = EnvFilter::try_new(spec).ok()?;
    Some(if names_rustls(spec) {
        filter
    } else {
        quiet_client_hellos(filter)
    })
}

fn quiet_client_hellos(filter: EnvFilter) -> EnvFilter {
    match CLIENT_HELLO_DIRECTIVE.parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}

/// Whether a directive of `spec` is for the `rustls` crate or one of its modules (its target,
/// before `[` or `=`), not for a crate that only has the word in its name (`hyper_rustls`).
fn names_rustls(spec: &str) -> bool {
    spec.split(',').any(|directive| {
        let target = directive.split(['[', '=']).next().unwrap_or("").trim();
        target == "rustls" || target.starts_with("rustls::")
    })
}

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(config: &LogConfig) {
    let _ = init_with(config, &TelemetryConfig::default());
}

/// [`init`], plus OTLP trace export when configured.
pub fn init_with(config: &LogConfig, telemetry: &TelemetryConfig) -> Guard {
    let provider =
        telemetry.otlp_endpoint.as_deref().and_then(|endpoint| {
            match tracer_provider_with(endpoint, &telemetry.service_name, telemetry.sampler) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("portcullis: traces will not be exported: {e}");
                    None
                }
            }
        });
    let mut filter = filter(config);
    if provider.is_some() {
        if let Ok(spans) = format!("{SPAN_TARGET}=info").parse() {
            filter = filter.add_directive(spans);
        }
    }
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match config.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("portcullis")));
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(filter)
        .try_init();
    Guard(provider)
}

/// An OTLP/HTTP (protobuf) exporter to `<endpoint>/v1/traces`, batched, every trace sampled.
pub fn tracer_provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, String> {
    tracer_provider_with(endpoint, service_name, Sampler::default())
}

/// [`tracer_provider`] with a sampler (`telemetry.sampler`, `OTEL_TRACES_SAMPLER`).
pub fn tracer_provider_with(
    endpoint: &str,
    service_name: &str,
    sampler: Sampler,
) -> Result<SdkTracerProvider, String> {
    use opentelemetry_sdk::trace::Sampler as S;
    let root = match sampler.ratio {
        r if r >= 1.0 => S::AlwaysOn,
        r if r <= 0.0 => S::AlwaysOff,
        r => S::TraceIdRatioBased(r),
    };
    let sampler = if sampler.parent_based {
        S::ParentBased(Box::new(root))
    } else {
        root
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    use super::filter_of;

    /// Which of rustls's handshake warning, rustls's other warnings, rustls's handshake error
    /// and Portcullis's own warning the filter `spec` lets through.
    fn passes(spec: &str) -> [bool; 4] {
        let filter = filter_of(spec).expect("a valid filter");
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            [
                tracing::enabled!(target: "rustls::msgs::handshake", Level::WARN),
                tracing::enabled!(target: "rustls::conn", Level::WARN),
                tracing::enabled!(target: "rustls::msgs::handshake", Level::ERROR),
                tracing::enabled!(target: "portcullis::server", Level::WARN),
            ]
        })
    }

    #[test]
    fn client_hello_warnings_stay_out_of_the_log_unless_rustls_is_named() {
        assert_eq!(passes("warn"), [false, true, true, true]);
        assert_eq!(passes("info"), [false, true, true, true]);
        assert_eq!(passes("portcullis=debug,info"), [false, true, true, true]);
        // An operator who asks for rustls gets all of it.
        assert_eq!(passes("warn,rustls=warn"), [true, true, true, true]);
        assert_eq!(passes("rustls=debug,warn"), [true, true, true, true]);
        assert_eq!(passes("warn,rustls::msgs=warn"), [true, true, true, true]);
        // Crates with the word in their names are not rustls.
        assert_eq!(passes("warn,hyper_rustls=debug"), [false, true, true, true]);
        assert_eq!(passes("warn,tokio_rustls=debug"), [false, true, true, true]);
        // Nothing is let through that the level itself keeps out.
        assert_eq!(passes("error"), [false, false, true, false]);
    }

    #[test]
    fn a_spec_that_is_no_filter_is_refused() {
        assert!(filter_of("portcullis=loud").is_none());
    }
}
