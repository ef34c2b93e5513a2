//! Small primitives every stage may use: the clock, random tokens and digests. A leaf: it
//! imports no other module of the crate.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 256 random bits, base64url: session IDs, sign-in state, nonces, PKCE verifiers, `jti`s.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Hex SHA-256, for store keys derived from secrets.
pub fn digest(s: &str) -> String {
    prefixed_hex("", &sha256(s))
}

/// The SHA-256 of `s`.
pub fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// `prefix` followed by the lowercase hex of `bytes`, in one allocation.
pub fn prefixed_hex(prefix: &str, bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(prefix.len() + 2 * bytes.len());
    out.push_str(prefix);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// Unix seconds as App Service writes `expires_on`: `2026-12-02T14:00:00.0000000Z`.
pub fn iso_8601(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.min(253_402_300_799));
    let text = humantime::format_rfc3339_seconds(t).to_string();
    match text.strip_suffix('Z') {
        Some(base) => format!("{base}.0000000Z"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_256_bits_of_base64url_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }

    #[test]
    fn digest_is_hex_sha256() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

#[cfg(test)]
mod iso_tests {
    #[test]
    fn expires_on_is_written_as_app_service_writes_it() {
        assert_eq!(super::iso_8601(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(
            super::iso_8601(1_796_220_000),
            "2026-12-02T14:00:00.0000000Z"
        );
        assert_eq!(super::iso_8601(u64::MAX), "9999-12-31T23:59:59.0000000Z");
    }
}
