use super::*;

use std::net::{Ipv4Addr, Ipv6Addr};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn values<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    map.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn trusted_10() -> Vec<IpNet> {
    nets(&["10.0.0.0/8"])
}

// --- remove_hop_by_hop ----------------------------------------------------------------------

#[test]
fn fixed_hop_by_hop_fields_are_removed() {
    let mut map = headers(&[
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "gzip"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
    ]);
    remove_hop_by_hop(&mut map);
    assert!(map.is_empty(), "left behind: {map:?}");
}

#[test]
fn end_to_end_fields_are_untouched() {
    let original = headers(&[
        ("host", "app.example.com"),
        ("accept", "text/html"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("content-length", "12"),
        ("cookie", "a=b"),
        ("authorization", "Bearer x"),
        ("trailer", "x-checksum"),
        ("x-custom", "1"),
    ]);
    let mut map = original.clone();
    remove_hop_by_hop(&mut map);
    assert_eq!(map, original);
    assert_eq!(values(&map, "accept"), ["text/html", "application/json"]);
}

#[test]
fn fields_named_in_connection_are_removed() {
    let mut map = headers(&[
        ("connection", "close, X-Secret-Hop"),
        ("x-secret-hop", "1"),
        ("x-kept", "2"),
    ]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key("x-secret-hop"));
    assert!(!map.contains_key(CONNECTION));
    assert_eq!(values(&map, "x-kept"), ["2"]);
}

#[test]
fn fields_named_in_every_connection_line_are_removed() {
    let mut map = headers(&[
        ("connection", "x-one"),
        ("connection", "x-two"),
        ("x-one", "1"),
        ("x-two", "2"),
        ("x-three", "3"),
    ]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key("x-one"));
    assert!(!map.contains_key("x-two"));
    assert_eq!(values(&map, "x-three"), ["3"]);
}

#[test]
fn connection_names_are_matched_despite_odd_spacing_and_case() {
    let mut map = headers(&[
        ("connection", "  X-One ,X-TWO,,\t x-three\t"),
        ("x-one", "1"),
        ("x-two", "2"),
        ("x-three", "3"),
        ("x-four", "4"),
    ]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key("x-one"));
    assert!(!map.contains_key("x-two"));
    assert!(!map.contains_key("x-three"));
    assert_eq!(values(&map, "x-four"), ["4"]);
}

#[test]
fn every_copy_of_a_named_field_is_removed() {
    let mut map = headers(&[("connection", "x-hop"), ("x-hop", "1"), ("x-hop", "2")]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key("x-hop"));
}

#[test]
fn te_trailers_alone_is_kept() {
    let mut map = headers(&[("te", "trailers")]);
    remove_hop_by_hop(&mut map);
    assert_eq!(values(&map, "te"), ["trailers"]);
}

#[test]
fn te_trailers_among_codings_is_kept_as_trailers_only() {
    let mut map = headers(&[("te", "gzip, Trailers")]);
    remove_hop_by_hop(&mut map);
    assert_eq!(values(&map, "te"), ["trailers"]);
}

#[test]
fn te_trailers_on_a_second_te_line_is_kept() {
    let mut map = headers(&[("te", "gzip"), ("te", "trailers")]);
    remove_hop_by_hop(&mut map);
    assert_eq!(values(&map, "te"), ["trailers"]);
}

#[test]
fn te_without_trailers_is_removed() {
    let mut map = headers(&[("te", "gzip"), ("te", "deflate;q=0.5")]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key(TE));
}

#[test]
fn connection_te_does_not_remove_te_trailers() {
    let mut map = headers(&[("connection", "TE"), ("te", "trailers")]);
    remove_hop_by_hop(&mut map);
    assert_eq!(values(&map, "te"), ["trailers"]);
    assert!(!map.contains_key(CONNECTION));
}

#[test]
fn connection_te_with_other_te_codings_still_removes_them() {
    let mut map = headers(&[("connection", "te"), ("te", "gzip")]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key(TE));
}

#[test]
fn connection_value_with_invalid_names_still_removes_the_valid_ones() {
    let mut map = headers(&[
        ("connection", "bad name, x-hop, (x)"),
        ("x-hop", "1"),
        ("x-kept", "2"),
    ]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key("x-hop"));
    assert!(!map.contains_key(CONNECTION));
    assert_eq!(values(&map, "x-kept"), ["2"]);
}

#[test]
fn a_connection_token_that_is_not_utf8_hides_none_of_the_others() {
    let mut map = headers(&[("x-hop", "1"), ("x-two", "2"), ("x-kept", "3")]);
    map.append(
        CONNECTION,
        HeaderValue::from_bytes(b"x-hop, \xffx-kept\xfe, x-two").unwrap(),
    );
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key("x-hop"));
    assert!(!map.contains_key("x-two"));
    assert_eq!(values(&map, "x-kept"), ["3"]);
}

#[test]
fn connection_names_long_names_exactly_and_an_underscore_is_not_a_dash() {
    let long = format!("x-{}", "a".repeat(100));
    let oversize = "b".repeat(70_000);
    let mut map = headers(&[
        (
            "connection",
            &format!("{}, x_hop, {oversize}", long.to_uppercase()),
        ),
        (&long, "1"),
        ("x-hop", "kept: the dash spelling"),
        ("x_hop", "removed"),
    ]);
    remove_hop_by_hop(&mut map);
    assert!(!map.contains_key(long.as_str()));
    assert!(!map.contains_key("x_hop"));
    assert_eq!(values(&map, "x-hop"), ["kept: the dash spelling"]);
}

// --- ClientAddr::new ------------------------------------------------------------------------

#[test]
fn untrusted_peer_is_the_client_whatever_xff_says() {
    let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
    let addr = ClientAddr::new(ip("198.51.100.1"), &map, &trusted_10());
    assert!(!addr.trusted);
    assert_eq!(addr.peer, ip("198.51.100.1"));
    assert_eq!(addr.client, ip("198.51.100.1"));
}

#[test]
fn no_trusted_proxies_means_no_peer_is_trusted() {
    let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &[]);
    assert!(!addr.trusted);
    assert_eq!(addr.client, ip("10.0.0.1"));
}

#[test]
fn trusted_peer_takes_the_client_from_the_right_of_xff() {
    let map = headers(&[("x-forwarded-for", "192.0.2.1, 203.0.113.9")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert!(addr.trusted);
    assert_eq!(addr.peer, ip("10.0.0.1"));
    assert_eq!(addr.client, ip("203.0.113.9"));
}

#[test]
fn trusted_peer_skips_trusted_hops_in_xff() {
    let map = headers(&[(
        "x-forwarded-for",
        "192.0.2.1, 203.0.113.9, 10.1.1.1, 10.2.2.2",
    )]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("203.0.113.9"));
}

#[test]
fn trusted_peer_with_only_trusted_hops_takes_the_left_most() {
    let map = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("10.9.9.9"));
}

#[test]
fn trusted_peer_without_xff_is_the_client() {
    let addr = ClientAddr::new(ip("10.0.0.1"), &HeaderMap::new(), &trusted_10());
    assert!(addr.trusted);
    assert_eq!(addr.client, ip("10.0.0.1"));
}

#[test]
fn ipv4_mapped_ipv6_peer_is_canonicalised_and_matched_as_ipv4() {
    let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
    let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
    let addr = ClientAddr::new(mapped, &map, &trusted_10());
    assert_eq!(addr.peer, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert!(addr.trusted);
    assert_eq!(addr.client, ip("203.0.113.9"));
}

#[test]
fn ipv4_mapped_xff_hops_are_canonicalised() {
    let map = headers(&[("x-forwarded-for", "203.0.113.9, ::ffff:10.1.1.1")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("203.0.113.9"));

    let map = headers(&[("x-forwarded-for", "::ffff:203.0.113.9")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("203.0.113.9"));
}

#[test]
fn plain_ipv6_peer_is_left_alone() {
    let addr = ClientAddr::new(
        ip("2001:db8::1"),
        &HeaderMap::new(),
        &nets(&["2001:db8::/32"]),
    );
    assert_eq!(
        addr.peer,
        IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap())
    );
    assert!(addr.trusted);
}

#[test]
fn garbage_xff_entries_are_ignored() {
    let map = headers(&[(
        "x-forwarded-for",
        "unknown, not-an-ip, 203.0.113.9, 10.1.1.1",
    )]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("203.0.113.9"));
}

#[test]
fn unparsable_hop_appended_by_a_trusted_proxy_does_not_let_the_client_choose_its_address() {
    // The client sends `X-Forwarded-For: 1.1.1.1`; the trusted load balancer in front appends
    // the real address as `ip:port`. Skipping that entry walks into client-controlled text.
    let map = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9:51234")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("203.0.113.9"));
}

#[test]
fn garbage_right_of_the_client_stops_the_walk_at_the_last_trusted_hop() {
    // An entry nobody can read sits between the client text and the trusted proxy: believe
    // nothing left of it.
    let map = headers(&[("x-forwarded-for", "1.1.1.1, garbage")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("10.0.0.1"));
}

#[test]
fn bracketed_ipv6_with_port_is_read() {
    let map = headers(&[("x-forwarded-for", "1.1.1.1, [2001:db8::7]:443")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("2001:db8::7"));
}

#[test]
fn xff_of_only_garbage_leaves_the_peer_as_client() {
    let map = headers(&[("x-forwarded-for", "unknown, _hidden")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("10.0.0.1"));
}

#[test]
fn multiple_xff_lines_are_read_as_one_list_in_order() {
    let map = headers(&[
        ("x-forwarded-for", "192.0.2.1"),
        ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
    ]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("203.0.113.9"));

    let map = headers(&[
        ("x-forwarded-for", "192.0.2.1"),
        ("x-forwarded-for", "10.1.1.1"),
    ]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    assert_eq!(addr.client, ip("192.0.2.1"));
}

// --- set_forwarded --------------------------------------------------------------------------

fn spoofed() -> HeaderMap {
    headers(&[
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-for", "5.6.7.8"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=1.2.3.4;proto=http"),
        ("x-real-ip", "1.2.3.4"),
    ])
}

#[test]
fn untrusted_peer_forwarding_headers_are_replaced() {
    let mut map = spoofed();
    let addr = ClientAddr::new(ip("198.51.100.7"), &map, &trusted_10());
    set_forwarded(&mut map, &addr, "app.example.com:8443");
    assert_eq!(values(&map, "x-forwarded-for"), ["198.51.100.7"]);
    assert_eq!(values(&map, "x-forwarded-proto"), ["https"]);
    assert_eq!(values(&map, "x-forwarded-host"), ["app.example.com:8443"]);
    assert_eq!(values(&map, "x-real-ip"), ["198.51.100.7"]);
    assert!(!map.contains_key(FORWARDED));
}

#[test]
fn untrusted_peer_without_forwarding_headers_gets_them_set() {
    let mut map = HeaderMap::new();
    let addr = ClientAddr::new(ip("2001:db8::7"), &map, &[]);
    set_forwarded(&mut map, &addr, "app.example.com");
    assert_eq!(values(&map, "x-forwarded-for"), ["2001:db8::7"]);
    assert_eq!(values(&map, "x-forwarded-proto"), ["https"]);
    assert_eq!(values(&map, "x-forwarded-host"), ["app.example.com"]);
    assert_eq!(values(&map, "x-real-ip"), ["2001:db8::7"]);
}

#[test]
fn the_longest_address_texts_are_written_whole() {
    for peer in ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "255.255.255.255"] {
        let mut map = HeaderMap::new();
        let addr = ClientAddr::new(ip(peer), &map, &[]);
        set_forwarded(&mut map, &addr, "app.example.com");
        assert_eq!(values(&map, "x-forwarded-for"), [peer]);
        assert_eq!(values(&map, "x-real-ip"), [peer]);
    }
}

#[test]
fn untrusted_peer_spoofed_host_is_dropped_when_the_real_host_is_not_a_header_value() {
    let mut map = spoofed();
    let addr = ClientAddr::new(ip("198.51.100.7"), &map, &[]);
    set_forwarded(&mut map, &addr, "bad\nhost");
    assert!(!map.contains_key(X_FORWARDED_HOST));
}

#[test]
fn trusted_proxy_xff_chain_is_appended_to() {
    let mut map = headers(&[
        ("x-forwarded-for", "192.0.2.1"),
        ("x-forwarded-for", "203.0.113.9"),
    ]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    set_forwarded(&mut map, &addr, "app.example.com");
    assert_eq!(
        values(&map, "x-forwarded-for"),
        ["192.0.2.1, 203.0.113.9, 10.0.0.1"]
    );
    assert_eq!(values(&map, "x-real-ip"), ["203.0.113.9"]);
}

#[test]
fn trusted_proxy_without_xff_gets_the_peer_alone() {
    let mut map = HeaderMap::new();
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    set_forwarded(&mut map, &addr, "app.example.com");
    assert_eq!(values(&map, "x-forwarded-for"), ["10.0.0.1"]);
    assert_eq!(values(&map, "x-real-ip"), ["10.0.0.1"]);
}

#[test]
fn trusted_proxy_proto_host_and_forwarded_are_kept() {
    let mut map = headers(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "public.example.com"),
        ("forwarded", "for=203.0.113.9"),
    ]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    set_forwarded(&mut map, &addr, "internal.example.com");
    assert_eq!(values(&map, "x-forwarded-proto"), ["http"]);
    assert_eq!(values(&map, "x-forwarded-host"), ["public.example.com"]);
    assert_eq!(values(&map, "forwarded"), ["for=203.0.113.9"]);
}

#[test]
fn trusted_proxy_missing_proto_and_host_are_filled_in() {
    let mut map = headers(&[("x-forwarded-for", "203.0.113.9")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    set_forwarded(&mut map, &addr, "app.example.com");
    assert_eq!(values(&map, "x-forwarded-proto"), ["https"]);
    assert_eq!(values(&map, "x-forwarded-host"), ["app.example.com"]);
}

#[test]
fn x_real_ip_is_the_computed_client_not_the_sent_one() {
    let mut map = headers(&[("x-forwarded-for", "203.0.113.9"), ("x-real-ip", "1.1.1.1")]);
    let addr = ClientAddr::new(ip("10.0.0.1"), &map, &trusted_10());
    set_forwarded(&mut map, &addr, "app.example.com");
    assert_eq!(values(&map, "x-real-ip"), ["203.0.113.9"]);
}

#[test]
fn set_forwarded_leaves_other_headers_alone() {
    let mut map = headers(&[("host", "app.example.com"), ("cookie", "a=b")]);
    let addr = ClientAddr::new(ip("198.51.100.7"), &map, &[]);
    set_forwarded(&mut map, &addr, "app.example.com");
    assert_eq!(values(&map, "host"), ["app.example.com"]);
    assert_eq!(values(&map, "cookie"), ["a=b"]);
}

// --- request_id -----------------------------------------------------------------------------

fn assert_generated(id: &HeaderValue) {
    let s = id.to_str().unwrap();
    assert_eq!(s.len(), 32, "{s}");
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not lower-case hex: {s}"
    );
}

#[test]
fn untrusted_request_id_is_replaced_with_a_generated_one() {
    let map = headers(&[("x-request-id", "client-chosen-id")]);
    let id = request_id(&map, false);
    assert_ne!(id, "client-chosen-id");
    assert_generated(&id);
}

#[test]
fn generated_request_ids_differ_between_calls() {
    let a = request_id(&HeaderMap::new(), false);
    let b = request_id(&HeaderMap::new(), false);
    assert_generated(&a);
    assert_generated(&b);
    assert_ne!(a, b);
}

#[test]
fn trusted_well_formed_request_id_is_kept() {
    let longest = "a".repeat(128);
    for kept in ["abc-123_DEF.4:5", "x", longest.as_str()] {
        let map = headers(&[("x-request-id", kept)]);
        assert_eq!(request_id(&map, true), kept);
    }
}

#[test]
fn trusted_request_id_that_is_too_long_is_replaced() {
    let long = "a".repeat(129);
    let map = headers(&[("x-request-id", &long)]);
    let id = request_id(&map, true);
    assert_generated(&id);
}

#[test]
fn trusted_request_id_with_bad_characters_is_replaced() {
    for bad in ["has space", "semi;colon", "quote\"", "slash/", "ünïcode"] {
        let mut map = HeaderMap::new();
        map.insert(
            X_REQUEST_ID,
            HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
        );
        let id = request_id(&map, true);
        assert_generated(&id);
    }
}

#[test]
fn trusted_empty_request_id_is_replaced() {
    let map = headers(&[("x-request-id", "")]);
    assert_generated(&request_id(&map, true));
}

#[test]
fn trusted_peer_without_request_id_gets_a_generated_one() {
    assert_generated(&request_id(&HeaderMap::new(), true));
}

#[test]
fn trusted_request_id_spellings() {
    // Field names are case-insensitive: any spelling is the one field.
    let mut map = HeaderMap::new();
    map.insert(
        HeaderName::from_bytes(b"X-REQUEST-ID").unwrap(),
        HeaderValue::from_static("edge-1"),
    );
    assert_eq!(request_id(&map, true), "edge-1");
    // A percent-escape is not decoded; `%` is not an ID character.
    assert_generated(&request_id(&headers(&[("x-request-id", "%41bc")]), true));
    // An underscore spelling is another field, not the request ID.
    assert_generated(&request_id(&headers(&[("x_request_id", "edge-1")]), true));
    // Two fields, even both well-formed: neither is trusted.
    let mut two = headers(&[("x-request-id", "edge-1")]);
    two.append(X_REQUEST_ID, HeaderValue::from_static("planted-2"));
    let id = request_id(&two, true);
    assert_ne!(id, "edge-1");
    assert_ne!(id, "planted-2");
    assert_generated(&id);
}

#[test]
fn request_ids_are_never_indexed_by_hpack() {
    let kept = headers(&[("x-request-id", "abc-123")]);
    let replaced = headers(&[("x-request-id", "has space")]);
    for id in [
        request_id(&HeaderMap::new(), false),
        request_id(&kept, true),
        request_id(&replaced, true),
    ] {
        assert!(id.is_sensitive(), "{:?}", id.as_bytes());
    }
    assert_eq!(
        request_id(&kept, true),
        "abc-123",
        "the mark leaves the value as it is"
    );
}

#[test]
fn header_name_constants_are_lower_case_field_names() {
    assert_eq!(X_FORWARDED_FOR.as_str(), "x-forwarded-for");
    assert_eq!(X_FORWARDED_PROTO.as_str(), "x-forwarded-proto");
    assert_eq!(X_FORWARDED_HOST.as_str(), "x-forwarded-host");
    assert_eq!(X_REAL_IP.as_str(), "x-real-ip");
    assert_eq!(FORWARDED.as_str(), "forwarded");
    assert_eq!(X_REQUEST_ID.as_str(), "x-request-id");
}

#[test]
fn reserved_headers_cannot_be_claims_headers() {
    for name in [
        "host",
        "cookie",
        "authorization",
        "x-forwarded-for",
        "content-length",
        "x-request-id",
    ] {
        assert!(is_reserved_header(&HeaderName::from_static(name)), "{name}");
    }
    assert!(!is_reserved_header(&HeaderName::from_static("x-user-upn")));
}
