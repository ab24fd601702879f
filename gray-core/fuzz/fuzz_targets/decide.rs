//! Any request, from any peer, against rules that read every kind of request value, with
//! labels trusted from some peers: deciding, explaining and rewriting its baggage never
//! panic, a rewritten baggage needs no second rewrite, and a mirrored copy never goes to
//! the version serving the request.
#![no_main]

use std::sync::OnceLock;

use gray_core::{Config, Gray};
use libfuzzer_sys::fuzz_target;

const RULES: &str = include_str!("../../tests/fixtures/everything.yaml");

fn gray() -> &'static Gray {
    static GRAY: OnceLock<Gray> = OnceLock::new();
    GRAY.get_or_init(|| {
        Gray::new(Config::from_yaml(RULES).expect("rules parse")).expect("rules are valid")
    })
}

fuzz_target!(|data: &[u8]| {
    // Lines: the first is the URI, the rest `name: value` headers, values any bytes.
    let mut lines = data.split(|&b| b == b'\n');
    let uri = lines.next().unwrap_or_default();
    let mut builder = http::Request::builder().uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&line[..colon]),
            http::HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        builder = builder.header(name, value);
    }
    let Ok(mut req) = builder.body(()) else {
        return;
    };
    // The connection's peer: unknown, a trusted proxy (its forwarding header read), a client.
    let peers = [
        None,
        Some("10.0.0.1:1"),
        Some("192.0.2.5:2"),
        Some("[2001:db8::9]:3"),
    ];
    if let Some(peer) = peers[data.len() % peers.len()].and_then(|p| p.parse().ok()) {
        req.extensions_mut().insert(gray_core::PeerAddr(peer));
    }
    let gray = gray();
    let decision = gray.decide(&req);
    let version = decision.version().to_owned();
    let stale = decision.baggage_stale();
    // A copy never goes to the version that serves the request.
    if let Some(mirror) = decision.mirror() {
        assert_ne!(mirror.version(), version);
    }
    // A new client's key is given under the split's cookie name (the fixture's `uid`).
    if let Some(cookie) = decision.set_cookie() {
        assert!(cookie.as_bytes().starts_with(b"uid="));
    }
    drop(decision);
    let _ = gray.explain(&req);
    let (parts, ()) = req.into_parts();
    let _ = gray.decide(&parts);
    req = http::Request::from_parts(parts, ());
    if stale {
        gray_core::label::relabel_baggage(req.headers_mut(), &version);
        // Rewritten once, the baggage names the decided version: nothing left to rewrite.
        let values = req
            .headers()
            .get_all("baggage")
            .iter()
            .map(|v| v.as_bytes());
        assert_eq!(gray_core::label::baggage_relabeled(values, &version), None);
    }
});
