//! The claims of the ID tokens the stand-in issues, shaped like Entra's v2 ID tokens
//! (id-token-claims-reference), and the parts access tokens share (`access` builds those).
//!
//! Identity rests on `tid` + `oid`; `sub` is pairwise (it differs per app), so a relying party
//! keying users by `sub` notices when two apps disagree. Above the overage threshold the
//! `groups` claim is replaced by `_claim_names`/`_claim_sources`, whose endpoint is the retired
//! Azure AD Graph URL exactly as Entra still emits it: callers must go to Microsoft Graph.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::state::{random, State};
use super::{OptionalClaims, TestUser};

/// The time claims of one token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times {
    pub iat: u64,
    pub exp: u64,
}

impl Times {
    pub fn from(now: u64, lifetime: std::time::Duration) -> Times {
        Times {
            iat: now,
            exp: now.saturating_add(lifetime.as_secs()),
        }
    }
}

/// `sub`: stable per user and app, unrelated across apps.
pub(crate) fn pairwise_sub(oid: &str, client_id: &str) -> String {
    let digest = Sha256::digest(format!("{oid}|{client_id}").as_bytes());
    URL_SAFE_NO_PAD.encode(digest)
}

/// The opaque `login_hint` claim, to be sent back on `/authorize` and `/logout`. Standard
/// base64 like Entra's, so it may contain `+` and `/`: callers must URL-encode it.
pub(crate) fn login_hint(user: &TestUser, tid: &str) -> String {
    format!(
        "O.{}",
        STANDARD.encode(format!("{}\u{1}{tid}\u{1}{}", user.oid, user.username))
    )
}

/// Opaque per-token claims Entra adds (`aio`, `rh`, `uti`).
pub(crate) fn opaque(map: &mut Map<String, Value>) {
    map.insert("aio".into(), Value::from(random(48)));
    map.insert("rh".into(), Value::from(format!("0.A{}.", random(42))));
    map.insert("uti".into(), Value::from(random(16)));
}

/// `groups`, or the overage pointer when there are more than the threshold.
pub(crate) fn groups(map: &mut Map<String, Value>, state: &State, user: &TestUser, tid: &str) {
    if user.groups.len() > state.config.groups_overage_threshold {
        map.insert("_claim_names".into(), json!({ "groups": "src1" }));
        map.insert(
            "_claim_sources".into(),
            json!({ "src1": { "endpoint": format!(
                "https://graph.windows.net/{tid}/users/{}/getMemberObjects", user.oid
            ) } }),
        );
    } else if !user.groups.is_empty() {
        map.insert("groups".into(), json!(user.groups));
    }
}

pub(crate) fn roles(map: &mut Map<String, Value>, user: &TestUser) {
    if !user.roles.is_empty() {
        map.insert("roles".into(), json!(user.roles));
    }
}

/// An ID token for `client_id`, with the optional claims its registration asks for.
/// Refresh-issued ID tokens carry no `nonce`.
pub(crate) fn id_token(
    state: &State,
    user: &TestUser,
    client_id: &str,
    optional: OptionalClaims,
    nonce: Option<&str>,
    sid: &str,
    t: Times,
) -> Value {
    let tid = state.tid_of(user);
    let mut map = Map::new();
    map.insert("aud".into(), Value::from(client_id));
    map.insert("iss".into(), Value::from(state.issuer_for(tid)));
    map.insert("iat".into(), Value::from(t.iat));
    map.insert("nbf".into(), Value::from(t.iat));
    map.insert("exp".into(), Value::from(t.exp));
    if let Some(email) = user.email.as_deref().filter(|_| optional.email) {
        map.insert("email".into(), Value::from(email));
    }
    map.insert("name".into(), Value::from(user.name.as_str()));
    if let Some(n) = nonce {
        map.insert("nonce".into(), Value::from(n));
    }
    map.insert("oid".into(), Value::from(user.oid.as_str()));
    map.insert(
        "preferred_username".into(),
        Value::from(user.username.as_str()),
    );
    if optional.sid {
        map.insert("sid".into(), Value::from(sid));
    }
    map.insert(
        "sub".into(),
        Value::from(pairwise_sub(&user.oid, client_id)),
    );
    map.insert("tid".into(), Value::from(tid));
    map.insert("ver".into(), Value::from("2.0"));
    if optional.login_hint {
        map.insert("login_hint".into(), Value::from(login_hint(user, tid)));
    }
    opaque(&mut map);
    groups(&mut map, state, user, tid);
    roles(&mut map, user);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sub_differs_per_app_and_is_stable() {
        let a = pairwise_sub("oid", "app1");
        assert_eq!(a, pairwise_sub("oid", "app1"));
        assert_ne!(a, pairwise_sub("oid", "app2"));
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn login_hint_is_opaque_and_stable() {
        let user = TestUser::new("ada@contoso.test", "Ada");
        let hint = login_hint(&user, "tid");
        assert!(hint.starts_with("O."));
        assert_eq!(hint, login_hint(&user, "tid"));
        assert!(!hint.contains("ada@"));
    }
}
