//! What the Redis store makes of fred's errors: which mean "unreachable for now" (503, retried
//! in the background) and which are refusals that retrying cannot fix (a start-up failure, or
//! 500), and how a client's first connection went.

use std::time::Duration;

use fred::prelude::*;

use super::StoreError;

/// How a client's first connection went.
pub(super) enum FirstConnection {
    Connected,
    /// Neither connected nor failed within the limit (a black-holed address).
    Pending,
    Failed(Error),
}

/// The first connection result of `client`, waiting at most `limit`. Call before
/// `client.connect()`.
pub(super) fn first_outcome(
    client: &Client,
    limit: Duration,
) -> impl std::future::Future<Output = FirstConnection> + 'static {
    let mut errors = client.error_rx();
    let mut connections = client.reconnect_rx();
    let client = client.clone();
    async move {
        let first = async {
            tokio::select! {
                Ok((e, _)) = errors.recv() => FirstConnection::Failed(e),
                Ok(_) = connections.recv() => {
                    // fred announces the connection just before it marks the client connected.
                    while !client.is_connected() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    FirstConnection::Connected
                }
                else => FirstConnection::Pending,
            }
        };
        tokio::time::timeout(limit, first)
            .await
            .unwrap_or(FirstConnection::Pending)
    }
}

/// True for errors that mean "Redis is down or unreachable for now", as opposed to Redis
/// refusing what we asked.
pub(super) fn is_unreachable(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::IO
        | ErrorKind::Timeout
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Routing
        | ErrorKind::Cluster
        | ErrorKind::Sentinel
        | ErrorKind::Tls => true,
        ErrorKind::Config
        | ErrorKind::Auth
        | ErrorKind::InvalidCommand
        | ErrorKind::InvalidArgument
        | ErrorKind::Url
        | ErrorKind::Protocol
        | ErrorKind::Unknown
        | ErrorKind::Parse
        | ErrorKind::NotFound => false,
    }
}

/// A TLS certificate the store does not trust: reported by fred as an I/O error, but no more
/// transient than a wrong password.
pub(super) fn is_certificate_error(e: &Error) -> bool {
    e.details().contains("InvalidCertificate")
}

/// Redis refused a command for lack of permission while connecting. fred may wrap the reply
/// in an error kind that otherwise means "unreachable" (a Sentinel error when the user may
/// not run ROLE), but an ACL does not change by itself: retrying would leave the store
/// answering 503 for ever.
pub(super) fn is_permission_error(e: &Error) -> bool {
    e.details().starts_with("NOPERM")
}

pub(super) fn store_error(e: &Error) -> StoreError {
    // Redis's error replies and fred's connection errors name commands and keys, never
    // values; a parse error might quote one, so only its kind is kept.
    let detail = match e.kind() {
        ErrorKind::Parse => "unexpected reply".to_owned(),
        _ => e.details().to_owned(),
    };
    if is_unreachable(e.kind()) {
        StoreError::Unavailable(format!("redis: {detail}"))
    } else {
        StoreError::Failed(format!("redis: {detail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_errors_are_unavailable_and_refusals_are_failures() {
        let down = Error::new(ErrorKind::IO, "Connection refused (os error 111)");
        assert!(matches!(store_error(&down), StoreError::Unavailable(_)));
        let refused = Error::new(ErrorKind::Unknown, "NOPERM this user has no permissions");
        assert!(matches!(store_error(&refused), StoreError::Failed(_)));
        let role = Error::new(
            ErrorKind::Sentinel,
            "NOPERM this user has no permissions to run the 'role' command",
        );
        assert!(is_permission_error(&role));
        let transient = Error::new(ErrorKind::Sentinel, "Invalid role: \"slave\"");
        assert!(!is_permission_error(&transient));
        let parse = Error::new(ErrorKind::Parse, "could not parse secret-value");
        assert!(!store_error(&parse).to_string().contains("secret"));
    }
}
