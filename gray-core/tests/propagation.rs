//! `Propagation`: the label written on an outbound request, in its header and in W3C
//! `baggage`, merged with what the request already carries.

mod common;

use common::{design, req};
use gray_core::GrayContext;
use gray_core::adapter::Propagation;
use http::{HeaderMap, HeaderName, HeaderValue};

fn applied(propagation: &Propagation, ctx: &GrayContext, headers: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_bytes(value).expect("a header value"),
        );
    }
    propagation.apply(ctx, &mut map);
    map
}

fn all<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    map.get_all(name)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect()
}

#[test]
fn the_label_goes_in_its_header_and_in_baggage() {
    let canary = GrayContext::new("canary");
    let map = applied(&Propagation::new(), &canary, &[]);
    assert_eq!(all(&map, "x-gray-version"), [b"canary"]);
    assert_eq!(all(&map, "baggage"), [b"gray=canary"]);

    // An engine's context writes the same, from its prebuilt values.
    let decided = design()
        .decide(&req("/", &[("x-app-version", "beta")]))
        .context();
    let map = applied(
        &Propagation::default(),
        &decided,
        &[("x-gray-version", b"stable")],
    );
    assert_eq!(
        all(&map, "x-gray-version"),
        [b"canary"],
        "overwritten, not added"
    );
    assert_eq!(all(&map, "baggage"), [b"gray=canary"]);
}

#[test]
fn the_builder_names_the_header_or_leaves_it_out() {
    let v2 = GrayContext::new("v2");
    let map = applied(
        &Propagation::new().header(HeaderName::from_static("x-version")),
        &v2,
        &[],
    );
    assert_eq!(all(&map, "x-version"), [b"v2"]);
    assert!(map.get("x-gray-version").is_none());
    assert_eq!(all(&map, "baggage"), [b"gray=v2"]);

    let map = applied(&Propagation::new().baggage_only(), &v2, &[]);
    assert_eq!(map.len(), 1, "{map:?}");
    assert_eq!(all(&map, "baggage"), [b"gray=v2"]);

    // `baggage_only` turns baggage back on, whatever came before it.
    let map = applied(&Propagation::new().baggage(false).baggage_only(), &v2, &[]);
    assert_eq!(all(&map, "baggage"), [b"gray=v2"]);

    let map = applied(
        &Propagation::new().baggage(false),
        &v2,
        &[("baggage", b"a=1")],
    );
    assert_eq!(all(&map, "x-gray-version"), [b"v2"]);
    assert_eq!(all(&map, "baggage"), [b"a=1"], "left as it was");
}

#[test]
fn baggage_keeps_its_members_and_replaces_an_old_label() {
    let canary = GrayContext::new("canary");
    let p = Propagation::new();
    let map = applied(
        &p,
        &canary,
        &[("baggage", b"userId=alice, gray=stable;p=1")],
    );
    assert_eq!(all(&map, "baggage"), [b"userId=alice,gray=canary"]);

    // Repeated headers are one list (RFC 9110): merged into one header.
    let map = applied(&p, &canary, &[("baggage", b"a=1"), ("baggage", b"b=2")]);
    assert_eq!(all(&map, "baggage"), [b"a=1,b=2,gray=canary"]);

    // Already saying so, once: left exactly as it came (spaces and properties included).
    let map = applied(&p, &canary, &[("baggage", b"a=1 , gray=canary;p=1")]);
    assert_eq!(all(&map, "baggage"), [b"a=1 , gray=canary;p=1"]);

    // A value that is not text is dropped; with nothing else there, only the label is.
    let map = applied(&p, &canary, &[("baggage", b"caf\xc3\xa9=1")]);
    assert_eq!(all(&map, "baggage"), [b"gray=canary"]);
    let map = applied(
        &p,
        &canary,
        &[("baggage", b"caf\xc3\xa9=1"), ("baggage", b"a=1")],
    );
    assert_eq!(all(&map, "baggage"), [b"a=1,gray=canary"]);
}

#[test]
fn a_version_that_is_no_header_value_writes_nothing() {
    let bad = GrayContext::new("can\nary");
    let map = applied(&Propagation::new(), &bad, &[]);
    assert!(map.is_empty(), "{map:?}");
    let map = applied(
        &Propagation::new().baggage_only(),
        &bad,
        &[("baggage", b"a=1")],
    );
    assert_eq!(all(&map, "baggage"), [b"a=1"]);
}
