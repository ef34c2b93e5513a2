use super::*;

fn canonical(raw: &str) -> String {
    match canonicalize(raw) {
        Ok((p, _)) => p.into_owned(),
        Err(e) => panic!("{raw:?} was refused: {e}"),
    }
}

fn notes(raw: &str) -> Notes {
    canonicalize(raw).map(|(_, n)| n).unwrap()
}

#[test]
fn a_canonical_path_is_borrowed_unchanged() {
    for raw in [
        "/",
        "/admin/x",
        "/a.b/c~d_e-f",
        "/.well-known/x",
        "/a/..b/c",
        "/q=1&x",
    ] {
        let (p, n) = canonicalize(raw).unwrap();
        assert!(matches!(p, Cow::Borrowed(_)), "{raw} was rewritten");
        assert_eq!(p, raw);
        assert_eq!(n, Notes::default());
    }
}

#[test]
fn unreserved_escapes_are_decoded_and_others_upper_cased() {
    assert_eq!(canonical("/%61dmin/x"), "/admin/x");
    assert_eq!(canonical("/%41DMIN"), "/ADMIN");
    assert_eq!(canonical("/a%2d%2E%5f%7e"), "/a-._~");
    assert_eq!(canonical("/caf%c3%a9"), "/caf%C3%A9");
    assert_eq!(canonical("/100%25"), "/100%25");
    assert_eq!(canonical("/a%20b"), "/a%20b");
}

#[test]
fn repeated_slashes_are_merged() {
    assert_eq!(canonical("//admin///x//"), "/admin/x/");
    assert_eq!(canonical("/%2F"), "/%2F", "an escaped slash is not merged");
}

#[test]
fn bytes_outside_ascii_are_escaped() {
    // http's URI parser admits them; upstreams would each decode them their own way.
    let raw = "/caf\u{e9}";
    assert_eq!(canonical(raw), "/caf%C3%A9");
}

#[test]
fn control_characters_raw_or_escaped_are_refused() {
    for raw in [
        "/admin%00/x",
        "/a%0d%0aX-Injected:1",
        "/a%7f",
        "/a%09",
        "/a\u{1}b",
    ] {
        assert!(canonicalize(raw).is_err(), "{raw:?} passed");
    }
}

#[test]
fn backslashes_malformed_and_double_escapes_are_refused() {
    for raw in [
        "/public\\..\\admin",
        "/admin\\x",
        "/a%zz",
        "/a%2",
        "/a%",
        "/%u0061dmin",
        "/%252e%252e/admin",
        "/a%2561",
        "/a%25%32%65",
    ] {
        assert!(canonicalize(raw).is_err(), "{raw:?} passed");
    }
}

#[test]
fn dot_segments_in_any_spelling_are_refused() {
    for raw in [
        "/public/../admin",
        "/public/./x",
        "/..",
        "/public/%2e%2e/admin",
        "/public/%2E./admin",
        "/public%2f..%2fadmin",
        "/public%5c..%5cadmin",
        "/public/..;x/admin",
        "/public/..%3bx/admin",
        "/public/.%2e",
    ] {
        assert!(canonicalize(raw).is_err(), "{raw:?} passed");
    }
}

#[test]
fn escaped_slashes_and_parameters_are_noted_for_the_route_to_judge() {
    assert!(notes("/files/a%2fb").encoded_slash);
    assert!(notes("/files/a%5Cb").encoded_slash);
    assert!(notes("/admin;x").parameters);
    assert!(notes("/admin%3bx").parameters);
    assert!(notes("/x/caf%C4%B1").case_trap);
    assert!(notes("/%e2%84%aaey").case_trap);
    assert_eq!(notes("/plain/%C3%A9"), Notes::default());
}

#[test]
fn upstream_readings_decode_slashes_and_drop_parameters() {
    assert_eq!(slashes_decoded("/admin%2Fx"), "/admin/x");
    assert_eq!(slashes_decoded("/a%5C%2Fb"), "/a/b");
    assert_eq!(parameters_dropped("/admin;jsessionid=1/x"), "/admin/x");
    assert_eq!(parameters_dropped("/admin%3Bx"), "/admin");
    assert_eq!(parameters_dropped("/;x/admin"), "/admin");
}

#[test]
fn relative_and_asterisk_targets_are_refused() {
    assert!(canonicalize("*").is_err());
    assert!(canonicalize("admin").is_err());
    assert!(canonicalize("").is_err());
}
