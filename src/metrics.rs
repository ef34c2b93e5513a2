//! Prometheus metrics, served by the admin listener at `/metrics`.
//!
//! One process-wide recorder (the `metrics` facade with the Prometheus exporter, rendered by
//! our own admin route rather than the exporter's listener). Label values are bounded: route
//! names come from the routing file, methods are folded to the standard set, reasons and kinds
//! are the code's own `&'static str` labels — never anything a client can choose.
//!
//! | metric | labels |
//! |---|---|
//! | `portcullis_requests_total` (counter) | `route`, `method`, `status` |
//! | `portcullis_request_duration_seconds` (histogram) | `route` |
//! | `portcullis_upstream_errors_total` (counter) | `route`, `kind` |
//! | `portcullis_auth_events_total` (counter) | `event`, `reason` |
//! | `portcullis_session_store_duration_seconds` (histogram) | `store`, `op` |
//! | `portcullis_session_store_errors_total` (counter) | `store`, `op` |
//! | `portcullis_config_reloads_total` (counter) | `result` |
//! | `portcullis_open_connections` (gauge) | `listener` |
//! | `portcullis_connections_refused_total` (counter) | `listener`, `reason` |
//! | `portcullis_build_info` (gauge, 1) | `version` |
//! | `portcullis_requests_in_flight` (gauge) | |
//! | `portcullis_session_cache_lookups_total` (counter) | `result` (`hit`, `miss`) |
//! | `portcullis_token_refresh_duration_seconds` (histogram) | |
//! | `portcullis_certificate_not_after_seconds` (gauge) | `file` (a `[tls]` certificate file) |
//! | `portcullis_redis_auth_refresh_total` (counter) | `result` (`ok`, `error`) |
//! | `portcullis_redis_auth_token_expiry_seconds` (gauge, Unix time) | |
//! | `process_*` (CPU, memory, file descriptors; `process.rs`) | |

mod process;

use std::sync::OnceLock;
use std::time::Duration;

use http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process; later calls reuse it).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ];
            let store = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
                2.0,
            ];
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("portcullis_request_duration_seconds".into()),
                    &latency,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("portcullis_session_store_duration_seconds".into()),
                        &store,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("portcullis_token_refresh_duration_seconds".into()),
                        &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                    )
                })
                .and_then(|b| b.install_recorder());
            match built {
                Ok(h) => {
                    metrics::gauge!("portcullis_build_info", "version" => env!("CARGO_PKG_VERSION"))
                        .set(1.0);
                    zero_series();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Series with a fixed set of labels exist from the start at zero, so that dashboards and
/// alert expressions (`rate`, ratios, `increase(...) > 0`) see them before the first event
/// rather than no data.
fn zero_series() {
    for result in ["ok", "failed"] {
        metrics::counter!("portcullis_config_reloads_total", "result" => result).increment(0);
    }
    for result in ["hit", "miss"] {
        metrics::counter!("portcullis_session_cache_lookups_total", "result" => result)
            .increment(0);
    }
    metrics::gauge!("portcullis_requests_in_flight").set(0.0);
    metrics::counter!("portcullis_connections_refused_total", "listener" => "https", "reason" => "per_client_cap")
        .increment(0);
    for result in TLS_HANDSHAKE_RESULTS {
        metrics::counter!("portcullis_tls_handshakes_total", "result" => result).increment(0);
    }
    // A histogram handle registers the series; its buckets read zero until an observation.
    let _ = metrics::histogram!("portcullis_token_refresh_duration_seconds");
}

/// The Prometheus text exposition of every metric, then the process's own (read from
/// `/proc` at each scrape, never on the request path).
pub fn render() -> String {
    match install() {
        Some(h) => {
            h.run_upkeep();
            let mut text = h.render();
            process::render(&mut text);
            text
        }
        None => String::new(),
    }
}

/// Method labels, folded to the standard set; the index is the method's slot in a route's
/// cached counters.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// Statuses whose counters are cached per route; others are looked up in the registry.
const STATUSES: [u16; 27] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413,
    415, 429, 431, 500, 501, 502, 503, 504,
];

/// A route's request metrics, resolved from the recorder once and kept with the route, so a
/// request costs no label allocation or registry search.
pub struct RouteMetrics {
    route: String,
    duration: OnceLock<metrics::Histogram>,
    requests: Box<[OnceLock<metrics::Counter>]>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl RouteMetrics {
    pub fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_owned(),
            duration: OnceLock::new(),
            requests: (0..METHODS.len() * STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// The metrics of requests that matched no route (`route=""`).
    pub fn none() -> &'static RouteMetrics {
        static NONE: OnceLock<RouteMetrics> = OnceLock::new();
        NONE.get_or_init(|| RouteMetrics::new(""))
    }

    /// One finished request.
    pub fn record(&self, method: &Method, status: u16, elapsed: Duration) {
        let m = method_index(method);
        let counter = || {
            metrics::counter!(
                "portcullis_requests_total",
                "route" => self.route.clone(),
                "method" => METHODS[m],
                "status" => status.to_string(),
            )
        };
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.requests[m * STATUSES.len() + i]
                .get_or_init(counter)
                .increment(1),
            None => counter().increment(1),
        }
        self.duration
            .get_or_init(|| {
                metrics::histogram!("portcullis_request_duration_seconds", "route" => self.route.clone())
            })
            .record(elapsed.as_secs_f64());
    }
}

pub fn upstream_error(route: &str, kind: &'static str) {
    metrics::counter!("portcullis_upstream_errors_total", "route" => route.to_owned(), "kind" => kind)
        .increment(1);
}

/// Authentication events (see `audit.rs` for the matching log events).
pub fn auth(event: &'static str, reason: &'static str) {
    metrics::counter!("portcullis_auth_events_total", "event" => event, "reason" => reason)
        .increment(1);
}

pub fn store_op(store: &'static str, op: &'static str, elapsed: Duration, ok: bool) {
    metrics::histogram!("portcullis_session_store_duration_seconds", "store" => store, "op" => op)
        .record(elapsed.as_secs_f64());
    if !ok {
        metrics::counter!("portcullis_session_store_errors_total", "store" => store, "op" => op)
            .increment(1);
    }
}

pub fn reload(ok: bool) {
    metrics::counter!("portcullis_config_reloads_total", "result" => if ok { "ok" } else { "failed" })
        .increment(1);
}

/// A connection closed right after accept, for `reason` (`per_client_cap`).
/// The `result` label values of `portcullis_tls_handshakes_total`.
const TLS_HANDSHAKE_RESULTS: [&str; 4] = ["full", "resumed", "failed", "timeout"];

/// One TLS handshake on the HTTPS listener: `full`, `resumed` (a session ticket or cache entry
/// was accepted), `failed` or `timeout`. Once per connection, never per request.
pub fn tls_handshake(result: &'static str) {
    metrics::counter!("portcullis_tls_handshakes_total", "result" => result).increment(1);
}

pub fn connection_refused(listener: &'static str, reason: &'static str) {
    metrics::counter!("portcullis_connections_refused_total", "listener" => listener, "reason" => reason)
        .increment(1);
}

/// Counts an open connection on `listener` until dropped.
pub struct Connection(&'static str);

impl Connection {
    pub fn open(listener: &'static str) -> Connection {
        metrics::gauge!("portcullis_open_connections", "listener" => listener).increment(1.0);
        Connection(listener)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        metrics::gauge!("portcullis_open_connections", "listener" => self.0).decrement(1.0);
    }
}

/// A request between its head arriving and its response body ending (or being dropped).
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    /// One global gauge, resolved once: an atomic add per request, no lookup.
    fn gauge() -> &'static metrics::Gauge {
        static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
        GAUGE.get_or_init(|| metrics::gauge!("portcullis_requests_in_flight"))
    }

    pub fn start() -> InFlight {
        Self::gauge().increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        Self::gauge().decrement(1.0);
    }
}

/// A session lookup answered from this instance's cache (`hit`) or from the store (`miss`).
pub fn session_cache(hit: bool) {
    static HIT: OnceLock<metrics::Counter> = OnceLock::new();
    static MISS: OnceLock<metrics::Counter> = OnceLock::new();
    let (slot, result) = if hit { (&HIT, "hit") } else { (&MISS, "miss") };
    slot.get_or_init(
        || metrics::counter!("portcullis_session_cache_lookups_total", "result" => result),
    )
    .increment(1);
}

/// One refresh-token redemption at the token endpoint, whatever its outcome.
pub fn token_refresh(elapsed: Duration) {
    static H: OnceLock<metrics::Histogram> = OnceLock::new();
    H.get_or_init(|| metrics::histogram!("portcullis_token_refresh_duration_seconds"))
        .record(elapsed.as_secs_f64());
}

/// When the certificate in `file` (a `[tls]` certificate file) expires, in seconds since the
/// Unix epoch.
pub fn certificate_not_after(file: &str, not_after: i64) {
    metrics::gauge!("portcullis_certificate_not_after_seconds", "file" => file.to_owned())
        .set(not_after as f64);
}

/// One renewal of the Redis Entra ID token (fetch and re-AUTH of every connection).
pub fn redis_auth_refresh(ok: bool) {
    metrics::counter!("portcullis_redis_auth_refresh_total", "result" => if ok { "ok" } else { "error" })
        .increment(1);
}

/// Makes both `portcullis_redis_auth_refresh_total` series visible before the first renewal.
pub fn redis_auth_refresh_zero() {
    for result in ["ok", "error"] {
        metrics::counter!("portcullis_redis_auth_refresh_total", "result" => result).increment(0);
    }
}

/// When the Redis Entra ID token in use expires, in seconds since the Unix epoch.
pub fn redis_auth_token_expiry(expires_at: u64) {
    metrics::gauge!("portcullis_redis_auth_token_expiry_seconds").set(expires_at as f64);
}
