//! W3C trace context and OTLP export: a client's `traceparent` reaches the upstream, and with
//! `telemetry.otlp_endpoint` the proxy's own span sits between them and is exported.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::support::{echo_json, eventually, full, seen, Harness, Options, Upstream};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn route(upstream: &Upstream) -> String {
    format!(
        "[[route]]\nname = \"app\"\nhost = \"app.example.test\"\nupstream = \"{}\"\nauth = \"public\"\n",
        upstream.url()
    )
}

/// An OTLP/HTTP collector on 127.0.0.1:0 that keeps every span it receives.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keep = spans.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let keep = keep.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        if path == "/v1/traces" {
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            for rs in export.resource_spans {
                                for ss in rs.scope_spans {
                                    keep.lock().unwrap().extend(ss.spans);
                                }
                            }
                        }
                        Ok::<_, Infallible>(http::Response::new(full("")))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (url, spans)
}

#[tokio::test]
async fn a_client_traceparent_reaches_the_upstream_unchanged_without_telemetry() {
    let up = Upstream::start("app").await;
    let h = Harness::start(&route(&up)).await;
    let parent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let resp = h
        .client(&["app.example.test"])
        .get(h.url("app.example.test", "/"))
        .header("traceparent", &parent)
        .header("tracestate", "vendor=1")
        .send()
        .await
        .unwrap();
    let echo = echo_json(resp).await;
    assert_eq!(seen(&echo, "traceparent"), [parent]);
    assert_eq!(seen(&echo, "tracestate"), ["vendor=1"]);
}

#[tokio::test]
async fn with_otlp_the_proxy_span_is_exported_and_parents_the_upstream_request() {
    let (collector_url, spans) = collector().await;
    // The exporter's HTTP client is a blocking one: build and stop it off the async threads.
    let endpoint = collector_url.clone();
    let provider = tokio::task::spawn_blocking(move || {
        portcullis::telemetry::tracer_provider(&endpoint, "portcullis-test").unwrap()
    })
    .await
    .unwrap();
    // #[tokio::test] runs every task on this thread: a thread-local subscriber sees the proxy.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("portcullis"))
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(portcullis::telemetry::SPAN_TARGET, tracing::Level::INFO),
        );
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));

    let up = Upstream::start("app").await;
    let h = Harness::start_with(
        &route(&up),
        Options {
            extra: format!("[telemetry]\notlp_endpoint = \"{collector_url}\"\nservice_name = \"portcullis-test\"\n"),
            ..Options::default()
        },
    )
    .await;
    let resp = h
        .client(&["app.example.test"])
        .get(h.url("app.example.test", "/traced"))
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo = echo_json(resp).await;
    let forwarded = seen(&echo, "traceparent");
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    let parts: Vec<&str> = forwarded[0].split('-').collect();
    assert_eq!(parts[1], TRACE_ID, "same trace");
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "the upstream's parent is the proxy's span"
    );
    let proxy_span = parts[2].to_owned();

    drop(guard);
    tokio::task::spawn_blocking(move || {
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            !spans.lock().unwrap().is_empty()
        })
        .await,
        "no span reached the collector"
    );
    let spans = spans.lock().unwrap();
    let span = spans
        .iter()
        .find(|s| hex::encode(&s.span_id) == proxy_span)
        .unwrap_or_else(|| panic!("span {proxy_span} not exported: {spans:?}"));
    assert_eq!(hex::encode(&span.trace_id), TRACE_ID);
    assert_eq!(hex::encode(&span.parent_span_id), CLIENT_SPAN);
    assert_eq!(span.name, "GET");
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    assert_eq!(attr("http.route"), Some(Value::StringValue("app".into())));
    assert_eq!(
        attr("http.response.status_code"),
        Some(Value::IntValue(200))
    );
    assert_eq!(attr("url.path"), Some(Value::StringValue("/traced".into())));
}

/// The real binary with `otlp_endpoint` in its main file: nothing wired by hand. The log level
/// is `warn`, which must quiet the logs without losing the request spans.
#[tokio::test]
async fn the_binary_exports_spans_to_the_configured_otlp_endpoint() {
    let (collector_url, spans) = collector().await;
    let up = Upstream::start("app").await;
    let dir = tempfile::TempDir::new().unwrap();
    let pki = crate::support::Pki::new();
    let (cert, key) = pki.leaf(&["app.example.test"]);
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    std::fs::write(dir.path().join("routes.toml"), route(&up)).unwrap();
    let port = crate::support::free_port();
    std::fs::write(
        dir.path().join("portcullis.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n\n\
             [routes]\nfile = \"routes.toml\"\n\n[log]\nlevel = \"warn\"\n\n\
             [telemetry]\notlp_endpoint = \"{collector_url}\"\n"
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(dir.path().join("portcullis.toml"))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("app.example.test", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let url = format!("https://app.example.test:{port}/from-config");
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    assert!(
        eventually(Duration::from_secs(10), || async {
            client
                .get(&url)
                .header("traceparent", &traceparent)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "the binary serves the route"
    );
    // SIGTERM: the binary drains and flushes its spans on the way out.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt;
    let _ = child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            spans.lock().unwrap().iter().any(|s| {
                hex::encode(&s.trace_id) == TRACE_ID
                    && hex::encode(&s.parent_span_id) == CLIENT_SPAN
            })
        })
        .await,
        "the proxy's span, child of the client's, reached the collector: {:?}\n{stderr}",
        spans.lock().unwrap()
    );
}

/// A provider exporting to a fresh collector, its layer installed on this thread.
async fn traced(
    sampler: portcullis::config::Sampler,
) -> (
    String,
    Arc<Mutex<Vec<Span>>>,
    opentelemetry_sdk::trace::SdkTracerProvider,
    tracing::subscriber::DefaultGuard,
) {
    let (collector_url, spans) = collector().await;
    let endpoint = collector_url.clone();
    let provider = tokio::task::spawn_blocking(move || {
        portcullis::telemetry::tracer_provider_with(&endpoint, "portcullis-test", sampler).unwrap()
    })
    .await
    .unwrap();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("portcullis"))
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(portcullis::telemetry::SPAN_TARGET, tracing::Level::INFO),
        );
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (collector_url, spans, provider, guard)
}

async fn flush(provider: opentelemetry_sdk::trace::SdkTracerProvider) {
    tokio::task::spawn_blocking(move || {
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
}

/// The span of a streamed answer ends when its body ends, not when its head is sent.
#[tokio::test]
async fn the_request_span_ends_with_the_response_body() {
    let (url, spans, provider, guard) = traced(portcullis::config::Sampler::default()).await;
    let up = Upstream::start("app").await;
    let h = Harness::start_with(
        &route(&up),
        Options {
            extra: format!("[telemetry]\notlp_endpoint = \"{url}\"\n"),
            ..Options::default()
        },
    )
    .await;
    let mut resp = h
        .client(&["app.example.test"])
        .get(h.url("app.example.test", "/held"))
        .header("x-test-action", "hold=span-end")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.chunk().await.unwrap().unwrap(), "first");
    // The head is here and the body is held open: the span must not have ended yet.
    let released_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    crate::upstream::release("span-end");
    while resp.chunk().await.unwrap().is_some() {}
    drop(guard);
    flush(provider).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            !spans.lock().unwrap().is_empty()
        })
        .await,
        "no span reached the collector"
    );
    let spans = spans.lock().unwrap();
    let span = spans
        .iter()
        .find(|s| {
            s.attributes
                .iter()
                .any(|a| a.key == "url.path" && format!("{:?}", a.value).contains("\"/held\""))
        })
        .unwrap_or_else(|| panic!("no span for /held: {spans:?}"));
    assert!(
        span.end_time_unix_nano >= released_at,
        "the span ended before the body was released: start {} end {} released {released_at}",
        span.start_time_unix_nano,
        span.end_time_unix_nano
    );
}

/// `parentbased_always_off`: a client's sampled trace is recorded, a new trace is not.
#[tokio::test]
async fn sampling_follows_the_configured_sampler() {
    let sampler = portcullis::config::Sampler {
        parent_based: true,
        ratio: 0.0,
    };
    let (url, spans, provider, guard) = traced(sampler).await;
    let up = Upstream::start("app").await;
    let h = Harness::start_with(
        &route(&up),
        Options {
            extra: format!("[telemetry]\notlp_endpoint = \"{url}\"\n"),
            ..Options::default()
        },
    )
    .await;
    let client = h.client(&["app.example.test"]);
    let mut sent_spans = Vec::new();
    for traceparent in [Some(format!("00-{TRACE_ID}-{CLIENT_SPAN}-01")), None] {
        let mut req = client.get(h.url("app.example.test", "/sampled"));
        if let Some(tp) = &traceparent {
            req = req.header("traceparent", tp);
        }
        let echo = echo_json(req.send().await.unwrap()).await;
        let forwarded = seen(&echo, "traceparent");
        assert_eq!(forwarded.len(), 1, "{forwarded:?}");
        sent_spans.push(forwarded[0].split('-').nth(2).unwrap().to_owned());
    }
    drop(guard);
    flush(provider).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            !spans.lock().unwrap().is_empty()
        })
        .await,
        "the sampled trace's span reached the collector"
    );
    let exported: Vec<String> = spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| hex::encode(&s.span_id))
        .collect();
    assert!(exported.contains(&sent_spans[0]), "{exported:?}");
    assert!(
        !exported.contains(&sent_spans[1]),
        "an unsampled root span was exported"
    );
}
