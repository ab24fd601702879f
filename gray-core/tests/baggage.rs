//! The W3C `baggage` codec: reading the label member, merging it into existing baggage.

use gray_core::label::{
    BAGGAGE_HEADER, MAX_BAGGAGE_LEN, baggage_member, baggage_relabeled, baggage_with,
    relabel_baggage,
};
use proptest::prelude::*;

#[test]
fn reads_members_with_whitespace_and_properties() {
    let h = b" a=1 ,\tgray\t=\tcanary\t; ttl=5 ;x, b=2";
    assert_eq!(baggage_member(h, "gray"), Some(&b"canary"[..]));
    assert_eq!(baggage_member(h, "a"), Some(&b"1"[..]));
    assert_eq!(baggage_member(h, "b"), Some(&b"2"[..]));
    assert_eq!(baggage_member(h, "ttl"), None, "a property is not a member");
    assert_eq!(baggage_member(b"", "gray"), None);
    assert_eq!(baggage_member(b"gray", "gray"), None, "no value");
    assert_eq!(baggage_member(b"gray=", "gray"), Some(&b""[..]));
    assert_eq!(baggage_member(b"grayx=1", "gray"), None);
}

/// W3C's limit, 8192 bytes, is read; one byte more is not.
#[test]
fn oversize_baggage_is_not_read() {
    let header = |len: usize| format!("gray=canary,{}", "x".repeat(len - "gray=canary,".len()));
    let at_limit = header(MAX_BAGGAGE_LEN);
    assert_eq!(at_limit.len(), 8192);
    assert_eq!(
        baggage_member(at_limit.as_bytes(), "gray"),
        Some(&b"canary"[..])
    );
    assert_eq!(baggage_member(header(8193).as_bytes(), "gray"), None);
}

#[test]
fn merging_keeps_other_members_and_replaces_ours() {
    assert_eq!(baggage_with(Some(""), "gray", "canary"), "gray=canary");
    assert_eq!(
        baggage_with(Some("a=1;p=2, gray=stable , b=%20x"), "gray", "canary"),
        "a=1;p=2,b=%20x,gray=canary"
    );
    assert_eq!(
        baggage_with(Some("gray=a,gray=b"), "gray", "c"),
        "gray=c",
        "duplicates of our key collapse into one"
    );
}

#[test]
fn relabeling_rewrites_only_a_contradicting_gray_member() {
    let one = |v: &str, version: &str| baggage_relabeled([v.as_bytes()], version);
    assert_eq!(
        one("a=1, gray = canary ;p=1, b=2", "stable").as_deref(),
        Some("a=1,b=2,gray=stable")
    );
    assert_eq!(
        one(" gray = stable ;p=1", "stable"),
        None,
        "says the version: left as it is"
    );
    assert_eq!(one("a=1", "stable"), None, "no gray member: left as it is");
    assert_eq!(
        one("gray=stable,gray=stable", "stable").as_deref(),
        Some("gray=stable")
    );
    // No length limit here: a long header's label would be read by someone downstream.
    let long = format!("gray=canary,{}", "x".repeat(MAX_BAGGAGE_LEN));
    assert!(
        one(&long, "stable").is_some_and(|b| b.ends_with(",gray=stable") && !b.contains("canary"))
    );
    // Bytes that are not UTF-8 do not hide a member.
    assert_eq!(
        baggage_relabeled([&b"a=\xff,gray=canary"[..]], "stable").as_deref(),
        Some("a=\u{fffd},gray=stable")
    );

    let mut headers = http::HeaderMap::new();
    headers.append(BAGGAGE_HEADER, "a=1".parse().unwrap());
    headers.append(BAGGAGE_HEADER, "gray=canary".parse().unwrap());
    relabel_baggage(&mut headers, "stable");
    let values: Vec<_> = headers.get_all(BAGGAGE_HEADER).iter().collect();
    assert_eq!(values, ["a=1,gray=stable"]);
    let mut untouched = http::HeaderMap::new();
    untouched.append(BAGGAGE_HEADER, "a=1".parse().unwrap());
    untouched.append(BAGGAGE_HEADER, "gray=stable".parse().unwrap());
    let before = untouched.clone();
    relabel_baggage(&mut untouched, "stable");
    assert_eq!(untouched, before);
}

proptest! {
    /// The engine's cheap check never misses a rewrite the adapters would make, and a
    /// rewrite leaves exactly one gray member, the decided version, and every other member.
    #[test]
    fn a_decision_marks_every_baggage_that_needs_relabeling(
        values in proptest::collection::vec(
            "((gray|a|b) ?= ?(stable|canary|v2|x)(;p=1)?,?){0,4}", 0..3),
        label in proptest::option::of("stable|canary|v2|v9"),
        inherit in any::<bool>(),
    ) {
        let g = gray_core::Gray::new(gray_core::Config::from_yaml(&format!(
            "label: {{ inherit: {} }}\nversions: [stable, canary, v2]\n",
            if inherit { "always" } else { "never" }
        )).unwrap()).unwrap();
        let mut builder = http::Request::get("/");
        if let Some(label) = &label {
            builder = builder.header("x-gray-version", label.as_str());
        }
        for v in &values {
            builder = builder.header("baggage", v.as_str());
        }
        let req = builder.body(()).unwrap();
        let d = g.decide(&req);
        let relabeled = baggage_relabeled(values.iter().map(|v| v.as_bytes()), d.version());
        if relabeled.is_some() {
            prop_assert!(d.baggage_stale(), "{values:?} {label:?} → {}", d.version());
        }
        if let Some(b) = relabeled {
            let grays: Vec<&str> = b.split(',').filter(|m| m.starts_with("gray=")).collect();
            prop_assert_eq!(grays, vec![format!("gray={}", d.version())]);
            for v in &values {
                for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    if !m.replace(' ', "").starts_with("gray=") {
                        prop_assert!(b.split(',').any(|x| x == m), "{m} kept in {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn merge_then_read_round_trips(others in "[a-z]{1,5}=[a-z0-9]{0,5}(,[a-z]{1,5}=[a-z0-9]{0,5}){0,4}",
                                   version in "[a-z0-9._-]{1,20}") {
        let merged = baggage_with(Some(&others), "gray", &version);
        prop_assert_eq!(baggage_member(merged.as_bytes(), "gray"), Some(version.as_bytes()));
        for member in others.split(',').filter(|m| !m.starts_with("gray=")) {
            prop_assert!(merged.split(',').any(|m| m == member), "{member} kept in {merged}");
        }
    }

    #[test]
    fn reading_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = baggage_member(&bytes, "gray");
    }
}
