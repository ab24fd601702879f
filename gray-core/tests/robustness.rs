//! No input panics: odd header values, huge and repeated headers, arbitrary config text,
//! and real rules files edited at random.

mod common;

use common::{design, gray};
use gray_core::rules::Format;
use gray_core::{Config, Gray};
use http::{HeaderName, HeaderValue, Request};
use proptest::prelude::*;

/// A config that reads every kind of request value, with inheritance on (shared with the
/// fuzz targets).
const EVERYTHING: &str = include_str!("fixtures/everything.yaml");

/// The rules file's JSON Schema, compiled once.
#[cfg(feature = "schema")]
fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        jsonschema::validator_for(&Config::json_schema()).expect("the schema is a valid schema")
    })
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Any bytes a HeaderValue accepts, including non-UTF-8 (obs-text).
        prop::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..80),
        Just(Vec::new()),
        Just(b"canary".to_vec()),
        Just(b"uid=\"\"; s; =; uid=".to_vec()),
        Just(b"192.0.2.9, 10.0.0.7,, [2001:db8::1]:80 , ::ffff:10.0.0.1".to_vec()),
        Just(b"for=\"[2001:db8::1]:4711\";by=x, For=10.0.0.3, for=unknown".to_vec()),
        // Address characters in any order.
        prop::collection::vec(
            prop::sample::select(b"0123456789abcdef.:,[] ".to_vec()),
            0..40
        ),
    ]
}

/// What a random edit of a rules file puts in: the schema's words, syntax, odd values.
#[rustfmt::skip]
fn mutation() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "", "{", "}", "[", "]", ":", ",", "\n", "\n  - ", "\"", "'", "=", " ", "#",
        "regex: \"(\"", "regex: \"^a{1000000}$\"", "present: true", "invert: true",
        "exact: \"\"", "prefix: x", "weights", "100", "-1", "0.001", "1e309", ".nan", "nan",
        "NaN", "inf", "to: v9", "to: canary", "by", "cookie", "query", "header", "salt: s",
        "versions", "routes", "name", "match", "split", "label", "inherit: always",
        "baggage: false", "method", "path", "x-gray-version", "mirror: { to: v2 }", "percent",
        "set_cookie: {}", "max_age: 0", "domain: d", "secure: true", "\u{0}", "é", "🙂",
        "client_ip: { cidr: [10.0.0.0/8] }", "by: client_ip", "real_ip: { trusted: [\"::/0\"] }",
        "0.0.0.0/0", "10.0.0.0/33", "header: forwarded", "by: { first_of: [] }",
        "first_of: [client_ip, { cookie: c }]",
    ])
}

/// The byte ranges of the words and numbers of `text` (at least one: the empty end).
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        let in_word = c.is_alphanumeric() || c == '-' || c == '_' || c == '.';
        match (start, in_word) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                words.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if words.is_empty() {
        words.push((text.len(), text.len()));
    }
    words
}

/// What replaces a word of a rules file: names, versions, numbers, odd values.
#[rustfmt::skip]
fn word() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "", "stable", "canary", "v2", "v9", "0", "100", "-1", "0.001", "99.999", "1e309",
        ".nan", "NaN", ".inf", "true", "null", "x-gray-version", "baggage", "cookie", "query",
        "header", "exact", "prefix", "regex", "present", "invert", "always", "never", "GET",
        "mirror", "percent", "set_cookie", "max_age", "/", "4294967296",
        "client_ip", "real_ip", "cidr", "trusted", "10.0.0.0", "::ffff:1.2.3.4", "forwarded",
        "first_of",
        "é", "🙂",
        "a-very-long-name-that-is-still-a-valid-header-name-but-longer-than-sixty-four-bytes",
    ])
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(path).expect("fixture readable")
}

fn header_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "x-a",
        "x-b",
        "cookie",
        "x-gray-version",
        "x-user-id",
        "x-app-version",
        "x-other",
        "x-ip",
        "x-forwarded-for",
        "forwarded",
    ])
}

/// The connection's peer: unknown, a trusted proxy, a client, IPv4 on an IPv6 socket.
fn peer() -> impl Strategy<Value = Option<gray_core::PeerAddr>> {
    prop::sample::select(vec![
        None,
        Some("10.0.0.1:1"),
        Some("192.0.2.5:2"),
        Some("[::ffff:10.0.0.1]:3"),
        Some("[2001:db8::9]:4"),
    ])
    .prop_map(|peer| peer.and_then(|p| p.parse().ok()).map(gray_core::PeerAddr))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decide_never_panics(
        headers in prop::collection::vec((header_name(), header_value()), 0..12),
        path in "(/[a-z0-9%?&=;._~-]{0,12}){0,4}",
        method in prop::sample::select(vec!["GET", "PUT", "PATCH", "X-CUSTOM"]),
        peer in peer(),
    ) {
        let mut req = Request::builder().method(method).uri(if path.is_empty() { "/".to_owned() } else { path });
        for (name, value) in &headers {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                req = req.header(HeaderName::from_static(name), v);
            }
        }
        let Ok(mut req) = req.body(()) else { return Ok(()) };
        if let Some(peer) = peer {
            req.extensions_mut().insert(peer);
        }
        for g in [gray(EVERYTHING), design()] {
            let d = g.decide(&req);
            prop_assert!(["stable", "canary", "v2"].contains(&d.version()));
            if let Some(m) = d.mirror() {
                prop_assert!(m.version() != d.version());
            }
            if let Some(cookie) = d.set_cookie() {
                prop_assert!(cookie.as_bytes().starts_with(b"uid="));
            }
            let _ = d.context();
            let _ = g.explain(&req);
        }
    }

    #[test]
    fn loaders_never_panic(text in "\\PC{0,300}") {
        for format in [Format::Yaml, Format::Toml, Format::Json] {
            if let Ok(config) = Config::from_str_as(&text, format) {
                let _ = Gray::new(config);
            }
        }
    }

    /// Real rules files, each edited at random — spans cut out, schema words and odd values
    /// put in — then loaded and, when they load, used: the inputs that reach validation
    /// and the engine with almost-valid rules, as a slip in a hand edit would.
    #[test]
    fn mutated_rules_never_panic(
        which in 0..3usize,
        edits in prop::collection::vec(
            (any::<bool>(), any::<prop::sample::Index>(), 0..12usize, mutation(), word()),
            1..3,
        ),
        requests in prop::collection::vec(prop::collection::vec((header_name(), header_value()), 0..4), 1..4),
    ) {
        let (mut text, format) = match which {
            0 => (EVERYTHING.to_owned(), Format::Yaml),
            1 => (fixture("rules.toml"), Format::Toml),
            _ => (fixture("rules.json"), Format::Json),
        };
        for (whole_word, at, cut, splice, word) in edits {
            let (start, end, insert) = if whole_word {
                // A word or number swapped for another: the structure mostly survives.
                let words = words(&text);
                let (start, end) = words[at.index(words.len())];
                (start, end, word)
            } else {
                // Any span cut, anything put in.
                let mut start = at.index(text.len() + 1);
                while !text.is_char_boundary(start) {
                    start -= 1;
                }
                let mut end = (start + cut).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                (start, end, splice)
            };
            text.replace_range(start..end, insert);
        }
        let Ok(config) = Config::from_str_as(&text, format) else { return Ok(()) };
        let Ok(gray) = Gray::new(config) else { return Ok(()) };
        // The rules file's JSON Schema is never stricter than gray: rules it accepts, each
        // value of its own type, are valid by it.
        #[cfg(feature = "schema")]
        {
            let value = serde_json::to_value(&*gray.config()).expect("a config serialises");
            let errors: Vec<String> = schema().iter_errors(&value).map(|e| format!("{}: {e}", e.instance_path())).collect();
            prop_assert!(errors.is_empty(), "gray accepts what its schema refuses: {errors:?}\n{text}");
        }
        for headers in requests {
            let mut req = Request::get("/x/42?k=v").body(()).expect("request builds");
            req.extensions_mut().insert(gray_core::PeerAddr(([10, 0, 0, 1], 80).into()));
            for (name, value) in headers {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    req.headers_mut().append(HeaderName::from_static(name), value);
                }
            }
            let d = gray.decide(&req);
            let _ = (d.version(), d.route(), d.context(), d.label_value(), d.mirror(), d.set_cookie());
            let _ = gray.explain(&req);
        }
    }

    /// Structured-ish YAML built from the schema's own words, so most inputs parse and
    /// exercise validation rather than the parser.
    #[test]
    fn validation_never_panics(
        versions in prop::collection::vec("[a-z0-9. -]{0,6}", 0..4),
        weight in prop::num::f64::ANY,
        regex in "[\\^$()|*+?a-z\\\\{},0-9\\[\\]]{0,20}",
        name in "[ -~]{0,10}",
    ) {
        let yaml = format!(
            "versions: {versions:?}\nroutes:\n  - {{ name: {name:?}, match: {{ headers: [{{ name: {name:?}, regex: {regex:?} }}] }}, split: {{ weights: {{ {v:?}: {weight:?} }} }} }}",
            v = versions.first().cloned().unwrap_or_default(),
        );
        if let Ok(config) = Config::from_yaml(&yaml) {
            let _ = Gray::new(config);
        }
    }
}

#[test]
fn huge_and_repeated_headers() {
    let g = gray(EVERYTHING);
    let big = "a".repeat(64 * 1024) + "c";
    let mut req = Request::get("/x/1?k=v").body(()).unwrap();
    for _ in 0..1_000 {
        req.headers_mut()
            .append("x-a", HeaderValue::from_str(&big).unwrap());
        req.headers_mut()
            .append("cookie", HeaderValue::from_static("a=1; b=2; uid=9"));
        req.headers_mut()
            .append("x-gray-version", HeaderValue::from_str(&big).unwrap());
    }
    let d = g.decide(&req);
    assert_eq!(
        (d.version(), d.route(), d.label_rejected()),
        ("v2", Some("h"), true)
    );
}

#[test]
fn nothing_panics_on_empty_things() {
    let g = gray(EVERYTHING);
    let req = Request::get("/?&&=&k")
        .header("cookie", "")
        .header("x-a", "")
        .body(())
        .unwrap();
    let _ = g.decide(&req);
    // An empty file says so, in each format, also after the byte order mark a Windows
    // editor writes first.
    for text in ["", " \n\t\n", "\u{feff}", "\u{feff}\n"] {
        for parsed in [
            Config::from_yaml(text),
            Config::from_toml(text),
            Config::from_json(text),
        ] {
            let message = parsed.unwrap_err().to_string();
            assert!(
                message.contains("the rules are empty"),
                "{text:?}: {message}"
            );
        }
    }
    // So does a file whose every line is commented out, in YAML and TOML (JSON has no
    // comments: a `#` there is a syntax error, and says so).
    let commented = "# versions: [stable, canary]\n  # default: stable\n\n#routes: []\n";
    let marked = format!("\u{feff}{commented}");
    for parsed in [
        Config::from_yaml(commented),
        Config::from_yaml(&format!("--- # rules\n{commented}...\n")),
        Config::from_yaml(&marked),
        Config::from_toml(commented),
        Config::from_toml(&marked),
    ] {
        let message = parsed.unwrap_err().to_string();
        assert!(message.contains("every line is a comment"), "{message}");
    }
    let message = Config::from_json(commented).unwrap_err().to_string();
    assert!(!message.contains("the rules are empty"), "{message}");
    // A file that starts with a byte order mark reads in every format (serde_json alone
    // would refuse it).
    for parsed in [
        Config::from_yaml("\u{feff}versions: [stable, canary]\n"),
        Config::from_toml("\u{feff}versions = [\"stable\", \"canary\"]\n"),
        Config::from_json("\u{feff}{\"versions\": [\"stable\", \"canary\"]}"),
    ] {
        assert_eq!(parsed.unwrap().versions, ["stable", "canary"]);
    }
    // A comment does not hide a value after it, nor a `#` that is part of a value.
    for text in [
        "# rules\nversions: [stable]\n",
        "---x: 1\n",
        "# rules\n  ---\n",
        "\"#\": 1\n",
    ] {
        if let Err(e) = Config::from_yaml(text) {
            assert!(
                !e.to_string().contains("the rules are empty"),
                "{text}: {e}"
            );
        }
    }
    // A YAML alias bomb is refused by the parser's budget, quickly.
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nversions: [*g]\n";
    assert!(Config::from_yaml(bomb).is_err());
}

#[test]
fn deeply_nested_documents_are_refused_without_overflowing_the_stack() {
    // A stack overflow aborts the process: a hostile or broken rules file must not take a
    // service down on reload. 100,000 levels, where each format's values may go.
    let depth = 100_000;
    let seqs = |open: &str, close: &str| format!("{}{}", open.repeat(depth), close.repeat(depth));
    let lists = seqs("[", "]");
    let yaml_maps = seqs("{a: ", "}");
    let json_maps = seqs("{\"a\": ", "}");
    let toml_tables = seqs("{a = ", "}");
    for nested in [&lists, &yaml_maps] {
        for doc in [
            nested.clone(),
            format!("versions: {nested}"),
            format!("versions: [stable]\nroutes: {nested}"),
            format!("label: {nested}\nversions: [stable]"),
            format!(
                "versions: [stable]\nroutes:\n  - {{ name: r, to: stable, match: {{ headers: {nested} }} }}"
            ),
        ] {
            assert!(Config::from_yaml(&doc).is_err());
        }
    }
    for nested in [&lists, &json_maps] {
        for doc in [
            nested.clone(),
            format!("{{\"versions\": {nested}}}"),
            format!("{{\"versions\": [\"stable\"], \"routes\": {nested}}}"),
            format!("{{\"label\": {nested}, \"versions\": [\"stable\"]}}"),
        ] {
            assert!(Config::from_json(&doc).is_err());
        }
    }
    for nested in [&lists, &toml_tables] {
        for doc in [
            format!("versions = {nested}"),
            format!("versions = ['stable']\nroutes = {nested}"),
            format!("label = {nested}\nversions = ['stable']"),
        ] {
            assert!(Config::from_toml(&doc).is_err());
        }
    }
}
