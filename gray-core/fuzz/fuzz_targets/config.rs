//! Any text as a rules file, in each format: loading, validating and compiling it never
//! panics, and rules that load decide a few requests without panicking.
#![no_main]

use gray_core::{Config, Gray};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for config in [
        Config::from_yaml(text),
        Config::from_toml(text),
        Config::from_json(text),
    ] {
        let Ok(config) = config else { continue };
        let Ok(gray) = Gray::new(config) else {
            continue;
        };
        for req in requests() {
            let decision = gray.decide(&req);
            let _ = (decision.version(), decision.baggage_stale());
            let _ = gray.explain(&req);
        }
    }
});

fn requests() -> Vec<http::Request<()>> {
    let with = |headers: &[(&str, &str)], uri: &str| {
        let mut b = http::Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap_or_default()
    };
    vec![
        with(&[], "/"),
        with(
            &[
                ("x-user-id", "7"),
                ("cookie", "uid=3; a=b"),
                ("x-gray-version", "canary"),
                ("baggage", "gray=v2,a=1"),
            ],
            "/a/b?uid=9&x=y",
        ),
        with(&[("host", "shop.example"), ("x-app-version", "beta")], "/x"),
    ]
}
