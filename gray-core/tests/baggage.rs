//! The W3C `baggage` codec: reading the label member, merging it into existing baggage.

use gray_core::{MAX_BAGGAGE_LEN, baggage_member, baggage_with};
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

#[test]
fn oversize_baggage_is_not_read() {
    let mut h = "gray=canary,".to_owned();
    h.push_str(&"x".repeat(MAX_BAGGAGE_LEN));
    assert_eq!(baggage_member(h.as_bytes(), "gray"), None);
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

proptest! {
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
