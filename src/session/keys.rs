//! Where sessions and their indexes live in the store. Every key is derived from a digest,
//! never from the secret or the claim itself.

use crate::primitives::digest;

use super::cache::Slot;

/// The store key of a session ID: `session:` and the hex of [`session_slot`].
pub fn store_key(id: &str) -> String {
    key_of(&session_slot(id))
}

/// The SHA-256 of a session ID: what the instance cache holds its session under, so a
/// signed-in request makes no key string unless it goes to the store.
pub(crate) fn session_slot(id: &str) -> Slot {
    crate::primitives::sha256(id)
}

pub(super) fn key_of(slot: &Slot) -> String {
    crate::primitives::prefixed_hex("session:", slot)
}

/// The set of session keys Entra knows by `sid` (every sign-in of one Entra browser session).
pub(super) fn sid_key(sid: &str) -> String {
    format!("sid-set:{}", digest(sid))
}

/// The single-key `sid` index of earlier versions, read and removed for sessions it still
/// names.
pub(super) fn legacy_sid_key(sid: &str) -> String {
    format!("sid:{}", digest(sid))
}

/// The set of a user's session keys (by `oid`, a GUID), for revoking them all.
pub(super) fn user_key(oid: &str) -> String {
    format!("user:{}", digest(&oid.to_ascii_lowercase()))
}
