//! The stored form of a session: what is sealed into the store, kept small because every
//! session lives in Redis (and, with the memory store, in this process) for its whole life.
//!
//! Format: `0x02 || postcard(Stored)` — length-prefixed fields, varint numbers, no field names.
//! Claims keep their names and values exactly; GUIDs (`oid`, `tid`, group IDs) take 16 bytes
//! instead of 36, and opaque tokens made of base64 segments (Entra's refresh tokens
//! `0.A…`, `login_hint`, JWTs) are kept as the bytes they encode, a quarter smaller. Every
//! such packing is used only when unpacking gives back the very same text.
//!
//! Values written by earlier versions (JSON, starting with `{`) are still read.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Session;
use crate::identity::Identity;

const FORMAT: u8 = 2;

#[derive(Serialize, Deserialize)]
struct Stored {
    claims: Vec<(String, Claim)>,
    groups_unresolved: bool,
    access_token: Option<Packed>,
    refresh_token: Option<Packed>,
    access_expires_at: u64,
    created_at: u64,
    expires_at: u64,
    sid: Option<Packed>,
    login_hint: Option<Packed>,
}

#[derive(Serialize, Deserialize)]
enum Claim {
    Str(String),
    Guid([u8; 16]),
    Strs(Vec<String>),
    Guids(Vec<[u8; 16]>),
    Int(i64),
    /// Anything else, as JSON text.
    Json(String),
}

/// A token or hint: its `.`-separated segments, each as text or as the bytes its base64
/// encodes.
#[derive(Serialize, Deserialize)]
struct Packed(Vec<Segment>);

#[derive(Serialize, Deserialize)]
enum Segment {
    Text(String),
    /// base64url without padding.
    Url(Vec<u8>),
    /// Standard base64 with padding.
    Std(Vec<u8>),
}

/// The sealed plaintext of `session`.
pub fn encode(session: &Session) -> Result<Vec<u8>, postcard::Error> {
    let stored = Stored {
        claims: session
            .identity
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), Claim::of(v)))
            .collect(),
        groups_unresolved: session.identity.groups_unresolved,
        access_token: session.access_token.as_deref().map(Packed::of),
        refresh_token: session.refresh_token.as_deref().map(Packed::of),
        access_expires_at: session.access_expires_at,
        created_at: session.created_at,
        expires_at: session.expires_at,
        sid: session.sid.as_deref().map(Packed::of),
        login_hint: session.login_hint.as_deref().map(Packed::of),
    };
    let mut out = vec![FORMAT];
    out.extend(postcard::to_allocvec(&stored)?);
    Ok(out)
}

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Binary(#[from] postcard::Error),
    #[error("unknown format")]
    Unknown,
}

/// Reads a sealed plaintext, of this format or the JSON of earlier versions.
pub fn decode(plain: &[u8]) -> Result<Session, DecodeError> {
    match plain.first() {
        Some(&FORMAT) => {
            let s: Stored = postcard::from_bytes(&plain[1..])?;
            let claims: Map<String, Value> =
                s.claims.into_iter().map(|(k, c)| (k, c.value())).collect();
            Ok(Session {
                identity: Identity {
                    claims,
                    groups_unresolved: s.groups_unresolved,
                },
                access_token: s.access_token.map(Packed::text),
                refresh_token: s.refresh_token.map(Packed::text),
                access_expires_at: s.access_expires_at,
                created_at: s.created_at,
                expires_at: s.expires_at,
                sid: s.sid.map(Packed::text),
                login_hint: s.login_hint.map(Packed::text),
            })
        }
        Some(b'{') => Ok(serde_json::from_slice(plain)?),
        _ => Err(DecodeError::Unknown),
    }
}

impl Claim {
    fn of(v: &Value) -> Claim {
        match v {
            Value::String(s) => guid(s).map_or_else(|| Claim::Str(s.clone()), Claim::Guid),
            Value::Array(a) => {
                let strs: Option<Vec<&str>> = a.iter().map(Value::as_str).collect();
                match strs {
                    Some(strs) => {
                        let guids: Option<Vec<[u8; 16]>> = strs.iter().map(|s| guid(s)).collect();
                        match guids {
                            Some(g) if !g.is_empty() => Claim::Guids(g),
                            _ => Claim::Strs(strs.into_iter().map(str::to_owned).collect()),
                        }
                    }
                    None => Claim::Json(v.to_string()),
                }
            }
            Value::Number(n) => n
                .as_i64()
                .map_or_else(|| Claim::Json(v.to_string()), Claim::Int),
            other => Claim::Json(other.to_string()),
        }
    }

    fn value(self) -> Value {
        match self {
            Claim::Str(s) => Value::String(s),
            Claim::Guid(g) => Value::String(guid_text(&g)),
            Claim::Strs(a) => a.into_iter().map(Value::String).collect(),
            Claim::Guids(a) => a.iter().map(|g| Value::String(guid_text(g))).collect(),
            Claim::Int(n) => Value::from(n),
            Claim::Json(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
}

/// A GUID in its canonical lower-case, hyphenated spelling, as Entra writes them.
fn guid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: String = s.split('-').collect();
    let lower = hex
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    let mut out = [0u8; 16];
    (lower && hex::decode_to_slice(&hex, &mut out).is_ok()).then_some(out)
}

/// The canonical spelling of a GUID, written straight into one string: a session read from
/// the store spells out every GUID claim (`oid`, `tid`, each group).
fn guid_text(g: &[u8; 16]) -> String {
    let mut hex = [0u8; 32];
    // Cannot fail: the buffer is exactly twice the GUID's length.
    let _ = hex::encode_to_slice(g, &mut hex);
    let mut out = String::with_capacity(36);
    for (i, c) in hex.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(char::from(*c));
    }
    out
}

impl Packed {
    fn of(text: &str) -> Packed {
        Packed(text.split('.').map(Segment::of).collect())
    }

    fn text(self) -> String {
        let parts: Vec<String> = self.0.into_iter().map(Segment::text).collect();
        parts.join(".")
    }
}

impl Segment {
    fn of(s: &str) -> Segment {
        if let Ok(bytes) = URL_SAFE_NO_PAD.decode(s) {
            if !bytes.is_empty() && URL_SAFE_NO_PAD.encode(&bytes) == s {
                return Segment::Url(bytes);
            }
        }
        if let Ok(bytes) = STANDARD.decode(s) {
            if !bytes.is_empty() && STANDARD.encode(&bytes) == s {
                return Segment::Std(bytes);
            }
        }
        Segment::Text(s.to_owned())
    }

    fn text(self) -> String {
        match self {
            Segment::Text(s) => s,
            Segment::Url(b) => URL_SAFE_NO_PAD.encode(b),
            Segment::Std(b) => STANDARD.encode(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(claims: Value, refresh: Option<&str>, hint: Option<&str>) -> Session {
        Session {
            identity: Identity {
                claims: claims.as_object().unwrap().clone(),
                groups_unresolved: true,
            },
            access_token: Some("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln".into()),
            refresh_token: refresh.map(str::to_owned),
            access_expires_at: 1_700_003_600,
            created_at: 1_700_000_000,
            expires_at: 1_700_086_400,
            sid: Some("00ab12cd-0000-4000-8000-000000000001".into()),
            login_hint: hint.map(str::to_owned),
        }
    }

    fn round_trip(s: &Session) -> Session {
        let bytes = encode(s).unwrap();
        assert_eq!(bytes[0], FORMAT);
        decode(&bytes).unwrap()
    }

    fn same(a: &Session, b: &Session) {
        assert_eq!(a.identity, b.identity);
        assert_eq!(a.access_token, b.access_token);
        assert_eq!(a.refresh_token, b.refresh_token);
        assert_eq!(
            (a.access_expires_at, a.created_at, a.expires_at),
            (b.access_expires_at, b.created_at, b.expires_at)
        );
        assert_eq!((&a.sid, &a.login_hint), (&b.sid, &b.login_hint));
    }

    #[test]
    fn every_claim_and_token_reads_back_exactly() {
        let claims = json!({
            "oid": "2f1e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b",
            "tid": "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
            "groups": ["0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c3", "9f8e7d6c-2222-4b5a-9c8d-1e2f3a4b5c6d"],
            "roles": ["Wiki.Read", "Wiki.Admin"],
            "mixed": ["0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c3", "DOMAIN\\name"],
            "empty": [],
            "name": "José Núñez",
            "iat": 1_700_000_000u64,
            "neg": -5,
            "big": 18_446_744_073_709_551_615u64,
            "ratio": 0.5,
            "flag": true,
            "null": null,
            "obj": {"a": [1, "x"]},
            "nums": [1, 2],
            "not-a-guid": "0b2c3d4e-1111-4a5b-8c6d-7e8f90a1b2c",
        });
        for (refresh, hint) in [
            (Some("0.AXoA6WgJJ9X2qk-KmNVtbXPmvdY1k_pPW5L9AH_LeR2mJTh6AA.AgABAAEAAAD--DLA3VO7QrddgJg7WevrAgDs_wUA9P8"), Some("O.CiQ1ZTlmNDMzMS1hYmM=")),
            (Some("opaque refresh token, with spaces."), None),
            (Some(""), Some("...")),
            (Some("a.b.c"), Some("x")),
            (None, None),
        ] {
            let s = session(claims.clone(), refresh, hint);
            same(&round_trip(&s), &s);
        }
    }

    #[test]
    fn guids_and_base64_are_stored_as_bytes() {
        let groups: Vec<String> = (0..50)
            .map(|i| format!("{i:08x}-1111-4a5b-8c6d-7e8f90a1b2c3"))
            .collect();
        let s = session(json!({ "groups": groups }), Some(&"A".repeat(1000)), None);
        let bytes = encode(&s).unwrap();
        let json_len = serde_json::to_vec(&s).unwrap().len();
        // 50 × 16 bytes of groups and 750 bytes of refresh token, against 50 × 39 and 1000.
        assert!(bytes.len() < 50 * 17 + 760 + 200, "{}", bytes.len());
        assert!(
            bytes.len() * 10 < json_len * 6,
            "{} vs {json_len}",
            bytes.len()
        );
        same(&decode(&bytes).unwrap(), &s);
    }

    #[test]
    fn the_json_of_earlier_versions_is_still_read() {
        let s = session(
            json!({"oid": "2f1e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"}),
            Some("r"),
            None,
        );
        let old = serde_json::to_vec(&s).unwrap();
        same(&decode(&old).unwrap(), &s);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x02",
            b"\x02\xff\xff\xff",
            b"\x07abc",
            b"{not json",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
