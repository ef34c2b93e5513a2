//! Entra's error answers: an OAuth `error`, an AADSTS number, and the diagnostic wrapping.
//!
//! Entra answers token-endpoint errors with JSON whose `error_description` starts with
//! `AADSTS<number>:` and ends with trace and correlation IDs and a timestamp, and whose
//! `timestamp` uses a space instead of `T` (reference-error-codes). Relying parties must branch
//! on `error`, never on the text; the stand-in reproduces the text so logs look familiar.
//! The correlation ID echoes the caller's `client-request-id` header, as Entra's does.

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::http::{json as json_response, Params, Resp};

/// One Entra error.
#[derive(Debug, Clone)]
pub(crate) struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

impl AadError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        AadError {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        AadError::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    pub fn invalid_grant(code: u32, message: impl Into<String>) -> Self {
        AadError::bad_request("invalid_grant", code, message)
    }

    pub fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        AadError::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    /// AADSTS900144: a required parameter is missing.
    pub fn missing(name: &str) -> Self {
        AadError::bad_request(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    /// AADSTS9002313: the catch-all for requests Entra cannot parse.
    pub fn malformed() -> Self {
        AadError::bad_request(
            "invalid_request",
            9002313,
            "Invalid request. Request is malformed or invalid.",
        )
    }

    /// AADSTS90002: the tenant segment names no tenant.
    pub fn unknown_tenant(tenant: &str) -> Self {
        AadError::bad_request(
            "invalid_tenant",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud. Check with your subscription \
                 administrator, this may happen if there are no active subscriptions for the \
                 tenant."
            ),
        )
    }

    /// AADSTS50011: `redirect_uri` is not one of the app's registered redirect URIs.
    pub fn reply_url_mismatch(redirect_uri: &str, client_id: &str) -> Self {
        AadError::bad_request(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the \
                 redirect URIs configured for the application '{client_id}'. Make sure the \
                 redirect URI sent in the request matches one added to your application in the \
                 Azure portal."
            ),
        )
    }

    /// AADSTS700016: no app registration has this client ID.
    pub fn app_not_found(client_id: &str, tenant: &str) -> Self {
        AadError::bad_request(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory \
                 '{tenant}'. This can happen if the application has not been installed by the \
                 administrator of the tenant or consented to by any user in the tenant. You may \
                 have sent your authentication request to the wrong tenant."
            ),
        )
    }

    /// `AADSTS<code>: <message>` plus the diagnostic lines.
    pub fn description(&self, ids: &Diagnostics) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code, self.message, ids.trace_id, ids.correlation_id, ids.timestamp
        )
    }

    pub fn body(&self, base_url: &str, ids: &Diagnostics) -> Value {
        json!({
            "error": self.error,
            "error_description": self.description(ids),
            "error_codes": [self.code],
            "timestamp": ids.timestamp,
            "trace_id": ids.trace_id,
            "correlation_id": ids.correlation_id,
            "error_uri": error_uri(base_url, self.code),
        })
    }

    pub fn response(&self, base_url: &str, ids: &Diagnostics) -> Resp {
        json_response(self.status, &self.body(base_url, ids))
    }

    /// The query (or fragment, or form) parameters of an error sent back to a redirect URI.
    pub fn redirect_params(
        &self,
        base_url: &str,
        ids: &Diagnostics,
        state: Option<&str>,
    ) -> Params {
        let mut p = vec![
            ("error".to_owned(), self.error.to_owned()),
            ("error_description".to_owned(), self.description(ids)),
            ("error_uri".to_owned(), error_uri(base_url, self.code)),
        ];
        if let Some(s) = state {
            p.push(("state".to_owned(), s.to_owned()));
        }
        Params(p)
    }
}

pub(crate) fn error_uri(base_url: &str, code: u32) -> String {
    format!("{base_url}/error?code={code}")
}

/// The IDs and time stamped on one error.
#[derive(Debug, Clone)]
pub(crate) struct Diagnostics {
    pub trace_id: String,
    pub correlation_id: String,
    pub timestamp: String,
}

impl Diagnostics {
    pub fn new(headers: &HeaderMap) -> Diagnostics {
        let correlation_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| super::config::is_guid(v))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Diagnostics {
            trace_id: uuid::Uuid::new_v4().to_string(),
            correlation_id,
            timestamp: timestamp(super::state::now()),
        }
    }
}

/// `2026-01-09 02:02:12Z`: Entra's error timestamp format.
pub(crate) fn timestamp(unix: u64) -> String {
    let (date, secs) = civil(unix);
    format!(
        "{date} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-01-09T02:02:12Z`: the ISO form Graph uses.
pub(crate) fn iso_timestamp(unix: u64) -> String {
    timestamp(unix).replacen(' ', "T", 1)
}

/// The date (`YYYY-MM-DD`) and the seconds into that day, from Unix seconds (proleptic
/// Gregorian calendar; the days-to-civil algorithm of H. Hinnant).
fn civil(unix: u64) -> (String, u64) {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), unix % 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_entra_format() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(timestamp(1_452_304_932), "2016-01-09 02:02:12Z");
        assert_eq!(timestamp(1_709_208_000), "2024-02-29 12:00:00Z");
        assert_eq!(iso_timestamp(1_452_304_932), "2016-01-09T02:02:12Z");
    }

    #[test]
    fn error_body_has_entra_fields() {
        let ids = Diagnostics {
            trace_id: "t".into(),
            correlation_id: "c".into(),
            timestamp: "ts".into(),
        };
        let body = AadError::invalid_grant(70008, "Expired.").body("https://b", &ids);
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_codes"], json!([70008]));
        assert_eq!(
            body["error_description"],
            "AADSTS70008: Expired.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: ts"
        );
        assert_eq!(body["error_uri"], "https://b/error?code=70008");
    }
}
