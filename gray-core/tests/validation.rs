//! Every way a config is refused names the route and the field, and never panics; a refused
//! reload leaves the rules in force untouched.

mod common;

use common::{design, gray, req, rules_path, temp_dir};
use gray_core::rules::Problem;
use gray_core::{Config, Error, Gray};

fn refuse(yaml: &str) -> Error {
    let config = match Config::from_yaml(yaml) {
        Ok(c) => c,
        Err(e) => return e,
    };
    assert!(
        config.validate().is_err(),
        "validate() must agree with Gray::new"
    );
    match Gray::new(config) {
        Ok(_) => panic!("config should be refused:\n{yaml}"),
        Err(e) => e,
    }
}

/// Asserts the error is a validation error at `route`/`field` and its message names both.
fn at(err: &Error, route: Option<&str>, field: &str) -> Problem {
    let invalid = err
        .invalid()
        .unwrap_or_else(|| panic!("not a validation error: {err}"));
    assert_eq!(invalid.route.as_deref(), route, "{err}");
    assert_eq!(invalid.field, field, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(field), "{msg}");
    if let Some(route) = route {
        assert!(msg.contains(&format!("route \"{route}\"")), "{msg}");
    }
    invalid.problem.clone()
}

/// Each problem's route and field, in the order told.
fn told(err: &Error) -> Vec<(Option<&str>, &str)> {
    err.problems()
        .map(|p| (p.route.as_deref(), p.field.as_str()))
        .collect()
}

fn with_route(route: &str) -> String {
    format!("versions: [stable, canary]\nroutes:\n{route}")
}

#[test]
fn unknown_version_in_to_and_weights() {
    let e = refuse(&with_route("  - { name: r1, to: canray }"));
    assert_eq!(
        at(&e, Some("r1"), "to"),
        Problem::UnknownVersion("canray".into())
    );
    let e = refuse(&with_route(
        "  - { name: r2, split: { weights: { stable: 90, beta: 10 } } }",
    ));
    assert_eq!(
        at(&e, Some("r2"), "split.weights.beta"),
        Problem::UnknownVersion("beta".into())
    );
}

#[test]
fn weights_must_sum_to_100_with_two_decimals_and_no_negatives() {
    let e = refuse(&with_route(
        "  - { name: w, split: { weights: { stable: 90, canary: 5 } } }",
    ));
    assert_eq!(
        at(&e, Some("w"), "split.weights"),
        Problem::WeightSum { sum: 95.0 }
    );
    let e = refuse(&with_route(
        "  - { name: w, split: { weights: { stable: 110, canary: -10 } } }",
    ));
    assert!(matches!(
        at(&e, Some("w"), "split.weights.canary"),
        Problem::WeightRange(_)
    ));
    let e = refuse(&with_route(
        "  - { name: w, split: { weights: { stable: 99.995, canary: 0.005 } } }",
    ));
    assert!(matches!(
        at(&e, Some("w"), "split.weights.canary"),
        Problem::WeightResolution(_)
    ));
    let e = refuse(&with_route(
        "  - { name: w, split: { weights: { stable: .nan, canary: 100 } } }",
    ));
    assert!(matches!(
        at(&e, Some("w"), "split.weights.stable"),
        Problem::WeightRange(_)
    ));
    // 0.01% resolution is accepted.
    assert!(
        Gray::new(
            Config::from_yaml(&with_route(
                "  - { name: w, split: { weights: { stable: 99.99, canary: 0.01 } } }"
            ))
            .unwrap()
        )
        .is_ok()
    );
}

#[test]
fn the_label_cannot_take_over_a_header_that_means_something_else() {
    for name in [
        "baggage",
        "Host",
        "content-length",
        "cookie",
        "authorization",
        "traceparent",
    ] {
        let e = refuse(&format!("label: {{ header: {name} }}\nversions: [stable]"));
        assert_eq!(
            at(&e, None, "label.header"),
            Problem::ReservedLabelHeader(name.to_ascii_lowercase())
        );
        assert!(e.to_string().contains("x-gray-version"), "{e}");
    }
    // Any header of its own will do, the default's spelling in capitals too.
    for name in ["x-release", "X-Gray-Version", "x-baggage"] {
        let yaml = format!("label: {{ header: {name} }}\nversions: [stable]");
        assert!(
            Gray::new(Config::from_yaml(&yaml).unwrap()).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn bad_header_names_anywhere() {
    let e = refuse(&with_route(
        "  - { name: h, match: { headers: [{ name: 'x user', exact: a }] }, to: canary }",
    ));
    assert_eq!(
        at(&e, Some("h"), "match.headers[0].name"),
        Problem::BadHeaderName("x user".into())
    );
    let e = refuse(&with_route(
        "  - { name: s, split: { by: { header: '' }, weights: { stable: 100 } } }",
    ));
    assert!(matches!(
        at(&e, Some("s"), "split.by.header"),
        Problem::BadHeaderName(_)
    ));
    let e = refuse("label: { header: 'bad:name' }\nversions: [stable]");
    assert!(matches!(
        at(&e, None, "label.header"),
        Problem::BadHeaderName(_)
    ));
    let e = refuse(&with_route(
        "  - { name: c, match: { cookies: [{ name: 'a;b', present: true }] }, to: canary }",
    ));
    assert!(matches!(
        at(&e, Some("c"), "match.cookies[0].name"),
        Problem::BadName(_)
    ));
    let e = refuse(&with_route(
        "  - { name: q, split: { by: { query: 'a=b' }, weights: { stable: 100 } } }",
    ));
    assert!(matches!(
        at(&e, Some("q"), "split.by.query"),
        Problem::BadName(_)
    ));
    // Names are any visible bytes, UTF-8 beyond ASCII included; never a space or a
    // control character.
    for name in ["größe", "名前", "a.b-c_d~e"] {
        let rules = with_route(&format!(
            "  - {{ name: q, match: {{ query: [{{ name: '{name}', present: true }}], cookies: [{{ name: '{name}', present: true }}] }}, to: canary }}"
        ));
        let checked = Config::from_yaml(&rules).and_then(Gray::new);
        assert!(checked.is_ok(), "{name}: {:?}", checked.err());
    }
    for name in ["a b", "a\\u0001b", "a\\u007fb"] {
        let e = refuse(&with_route(&format!(
            "  - {{ name: q, match: {{ query: [{{ name: \"{name}\", present: true }}] }}, to: canary }}"
        )));
        assert!(
            matches!(
                at(&e, Some("q"), "match.query[0].name"),
                Problem::BadName(_)
            ),
            "{name:?}"
        );
    }
}

#[test]
fn bad_and_oversize_regexes() {
    let e = refuse(&with_route(
        "  - { name: premium, match: { headers: [{ name: a, exact: x }, { name: b, regex: '^(high' }] }, to: canary }",
    ));
    assert!(matches!(
        at(&e, Some("premium"), "match.headers[1].regex"),
        Problem::BadRegex(_)
    ));
    let e = refuse(&with_route(
        r"  - { name: big, match: { path: { regex: '\w{1000}\w{1000}' } }, to: canary }",
    ));
    let problem = at(&e, Some("big"), "match.path.regex");
    assert!(matches!(problem, Problem::RegexTooBig { .. }));
    // The message says what made it large and what to write instead.
    let message = e.to_string();
    for words in [r"\w", "{m,n}", "[A-Za-z0-9_]", r"(?-u:\w)", "2048 KiB"] {
        assert!(message.contains(words), "{message:?} lacks {words:?}");
    }
    let long = "a".repeat(5_000);
    let e = refuse(&with_route(&format!(
        "  - {{ name: long, match: {{ query: [{{ name: q, regex: '{long}' }}] }}, to: canary }}"
    )));
    assert!(matches!(
        at(&e, Some("long"), "match.query[0].regex"),
        Problem::TooLong { .. }
    ));
}

/// A literal may be 8 KiB long and a regex's source 4 KiB; one byte more is refused,
/// naming both numbers.
#[test]
fn literals_and_regexes_are_refused_one_byte_past_their_limits() {
    for (field, max) in [("exact", 8192), ("prefix", 8192), ("regex", 4096)] {
        let route = |len: usize| {
            with_route(&format!(
                "  - {{ name: long, match: {{ headers: [{{ name: x-v, {field}: '{}' }}] }}, to: canary }}",
                "a".repeat(len)
            ))
        };
        let at_limit = Config::from_yaml(&route(max)).and_then(Gray::new);
        assert!(
            at_limit.is_ok(),
            "{field} of {max} bytes: {:?}",
            at_limit.err()
        );
        let e = refuse(&route(max + 1));
        let problem = at(&e, Some("long"), &format!("match.headers[0].{field}"));
        assert_eq!(problem, Problem::TooLong { len: max + 1, max }, "{field}");
    }
}

/// A split's salt may be 256 bytes long; one byte more is refused.
#[test]
fn a_salt_is_refused_one_byte_past_its_limit() {
    let route = |len: usize| {
        with_route(&format!(
            "  - {{ name: s, split: {{ salt: '{}', weights: {{ stable: 50, canary: 50 }} }} }}",
            "a".repeat(len)
        ))
    };
    let at_limit = Config::from_yaml(&route(256)).and_then(Gray::new);
    assert!(at_limit.is_ok(), "{:?}", at_limit.err());
    let e = refuse(&route(257));
    assert_eq!(
        at(&e, Some("s"), "split.salt"),
        Problem::TooLong { len: 257, max: 256 }
    );
}

#[test]
fn route_names_are_required_and_unique() {
    let e = refuse(&with_route(
        "  - { name: a, to: canary }\n  - { name: a, to: stable }",
    ));
    assert_eq!(
        at(&e, Some("a"), "name"),
        Problem::DuplicateRoute { first: 0 }
    );
    assert!(e.to_string().contains("route #0 has it"), "{e}");
    let e = refuse(&with_route(
        "  - { name: a, to: canary }\n  - { name: '', to: stable }",
    ));
    assert_eq!(at(&e, Some("#1"), "name"), Problem::BadRouteName);

    // A route with a bad or repeated name still has its body checked: one refusal tells
    // every problem. A name too long to repeat is told by the route's place, as an empty
    // one is.
    let long = "n".repeat(129);
    let e = refuse(&with_route(&format!(
        "  - {{ name: a, to: canary }}\n  - {{ name: a, to: beta }}\n  - {{ name: '', to: gamma }}\n  - {{ name: {long}, split: {{ weights: {{ stable: 1 }} }} }}"
    )));
    assert_eq!(
        told(&e),
        [
            (Some("a"), "name"),
            (Some("a"), "to"),
            (Some("#2"), "name"),
            (Some("#2"), "to"),
            (Some("#3"), "name"),
            (Some("#3"), "split.weights"),
        ],
        "{e}"
    );
    assert!(!e.to_string().contains(&long), "{e}");
    assert!(e.to_string().contains("1 to 128 bytes"), "{e}");

    // 128 bytes is still a name, in bytes, not characters: 64 two-byte ones are 128.
    for name in ["n".repeat(128), "é".repeat(64)] {
        let g = gray(&with_route(&format!("  - {{ name: {name}, to: canary }}")));
        assert_eq!(g.decide(&req("/", &[])).route(), Some(name.as_str()));
    }
    let e = refuse(&with_route(&format!(
        "  - {{ name: {}, to: canary }}",
        "é".repeat(65)
    )));
    assert_eq!(at(&e, Some("#0"), "name"), Problem::BadRouteName);
}

#[test]
fn versions_must_be_declared_unique_and_label_safe() {
    assert_eq!(
        at(&refuse("versions: []"), None, "versions"),
        Problem::NoVersions
    );
    let e = refuse("versions: [stable, canary, stable]");
    assert_eq!(
        at(&e, None, "versions[2]"),
        Problem::DuplicateVersion("stable".into())
    );
    for bad in ["'can ary'", "''", "'v2\\r\\nx-admin: 1'", &"v".repeat(65)] {
        let e = refuse(&format!("versions: [stable, {bad}]"));
        assert!(
            matches!(at(&e, None, "versions[1]"), Problem::BadVersionName(_)),
            "{bad}"
        );
    }
    // `versions` is required at all: a parse error.
    assert!(matches!(refuse("routes: []"), Error::Parse { .. }));
}

#[test]
fn a_route_needs_exactly_one_action_and_each_condition_one_matcher() {
    let e = refuse(&with_route("  - { name: none }"));
    assert_eq!(at(&e, Some("none"), "to"), Problem::RouteAction);
    let e = refuse(&with_route(
        "  - { name: both, to: canary, split: { weights: { canary: 100 } } }",
    ));
    assert_eq!(at(&e, Some("both"), "to"), Problem::RouteAction);
    let e = refuse(&with_route(
        "  - { name: two, match: { headers: [{ name: a, exact: x, prefix: y }] }, to: canary }",
    ));
    assert!(matches!(
        at(&e, Some("two"), "match.headers[0]"),
        Problem::MatcherArity(_)
    ));
    let e = refuse(&with_route(
        "  - { name: zero, match: { path: { invert: true } }, to: canary }",
    ));
    assert!(matches!(
        at(&e, Some("zero"), "match.path"),
        Problem::MatcherArity(_)
    ));
    let e = refuse(&with_route(
        "  - { name: m, match: { method: 'GE T' }, to: canary }",
    ));
    assert_eq!(
        at(&e, Some("m"), "match.method"),
        Problem::BadMethod("GE T".into())
    );
}

#[test]
fn unknown_fields_and_wrong_types_are_parse_errors_with_a_position() {
    for (yaml, needle) in [
        (
            "versions: [stable]\nroutes:\n  - { name: a, to: stable, weight: 3 }",
            "weight",
        ),
        (
            "versions: [stable]\nlabel: { inherit: sometimes }",
            "sometimes",
        ),
        (
            "versions: [stable]\nroutes:\n  - { name: a, match: { headers: [{ name: x, exact: y, flag: 1 }] }, to: stable }",
            "flag",
        ),
        ("versions: stable", "versions"),
    ] {
        let e = Config::from_yaml(yaml).expect_err(yaml);
        let msg = e.to_string();
        assert!(
            matches!(e, Error::Parse { .. }) && msg.contains(needle),
            "{msg}"
        );
    }
    let e = Config::from_json(r#"{"versions": ["a"], "extra": 1}"#).expect_err("unknown field");
    assert!(e.to_string().contains("extra"), "{e}");
    let e = Config::from_toml("versions = ['a']\n[label]\nheadr = 'x'").expect_err("unknown field");
    assert!(e.to_string().contains("headr"), "{e}");
}

/// The field a parse error names, and its message.
fn parse_error(e: &Error) -> (Option<&str>, &str) {
    match e {
        Error::Parse { field, message, .. } => (field.as_deref(), message.as_str()),
        other => panic!("not a parse error: {other}"),
    }
}

#[test]
fn parse_errors_name_the_field_in_every_format() {
    // (YAML, JSON, TOML) of the same mistake, and the field at fault.
    let cases = [
        (
            "versions: stable",
            r#"{"versions": "stable"}"#,
            "versions = 'stable'",
            Some("versions"),
        ),
        (
            "versions: [a]\nlabel: { inherit: sometimes }",
            r#"{"versions": ["a"], "label": {"inherit": "sometimes"}}"#,
            "versions = ['a']\n[label]\ninherit = 'sometimes'",
            Some("label.inherit"),
        ),
        (
            "versions: [a]\nroutes:\n  - { name: r, match: { headers: { name: x, exact: y } }, to: a }",
            r#"{"versions": ["a"], "routes": [{"name": "r", "match": {"headers": {"name": "x", "exact": "y"}}, "to": "a"}]}"#,
            "versions = ['a']\n[[routes]]\nname = 'r'\nto = 'a'\n[routes.match.headers]\nname = 'x'\nexact = 'y'",
            Some("routes[0].match.headers"),
        ),
        (
            "versions: [a]\nroutes:\n  - { name: r, to: a }\n  - { name: s, to: a, wieght: 3 }",
            r#"{"versions": ["a"], "routes": [{"name": "r", "to": "a"}, {"name": "s", "to": "a", "wieght": 3}]}"#,
            "versions = ['a']\n[[routes]]\nname = 'r'\nto = 'a'\n[[routes]]\nname = 's'\nto = 'a'\nwieght = 3",
            Some("routes[1].wieght"),
        ),
        (
            "versions: [a]\nroutes:\n  - { name: r, split: { by: user, weights: { a: 100 } } }",
            r#"{"versions": ["a"], "routes": [{"name": "r", "split": {"by": "user", "weights": {"a": 100}}}]}"#,
            "versions = ['a']\n[[routes]]\nname = 'r'\n[routes.split]\nby = 'user'\nweights = { a = 100 }",
            Some("routes[0].split.by"),
        ),
        // Nothing read yet, or a field missing from the top level: no field to name.
        ("routes: []", r#"{"routes": []}"#, "routes = []", None),
    ];
    for (yaml, json, toml, field) in cases {
        for (text, e) in [
            (yaml, Config::from_yaml(yaml)),
            (json, Config::from_json(json)),
            (toml, Config::from_toml(toml)),
        ]
        .map(|(text, parsed)| (text, parsed.expect_err(text)))
        {
            assert_eq!(parse_error(&e).0, field, "{text}: {e}");
            let shown = e.to_string();
            match field {
                Some(f) => assert!(shown.contains(&format!(" at `{f}`: ")), "{shown}"),
                None => assert!(!shown.contains(" at `"), "{shown}"),
            }
        }
    }
    // A syntax error names the field it is in, when it is in one, and what follows the
    // rules names none.
    let e = Config::from_json(r#"{"versions": ["a", }"#).expect_err("syntax");
    assert_eq!(parse_error(&e).0, Some("versions[1]"), "{e}");
    let e = Config::from_json(r#"{"versions": ["a"]} x"#).expect_err("trailing");
    assert_eq!(parse_error(&e).0, None, "{e}");
    let e = Config::from_yaml("versions: [a]\n---\nversions: [b]").expect_err("two documents");
    assert_eq!(parse_error(&e).0, None, "{e}");
    // A key is told as written, a control character in it escaped: one line to log.
    let e = Config::from_json(
        r#"{"versions": ["a"], "routes": [{"name": "r", "split": {"weights": {"a\nb": "x"}}}]}"#,
    )
    .expect_err("a weight that is no number");
    assert_eq!(
        parse_error(&e).0,
        Some(r"routes[0].split.weights.a\nb"),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'), "{e}");
    // The field survives naming the file.
    let dir = temp_dir("parse-field");
    let file = dir.join("rules.toml");
    std::fs::write(&file, "versions = 'stable'\n").unwrap();
    let e = Config::from_path(&file).expect_err("wrong type");
    assert_eq!(parse_error(&e).0, Some("versions"));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: invalid TOML at `versions`: ", file.display())),
        "{e}"
    );
}

#[test]
fn yaml_says_what_was_wanted_in_a_rules_file_s_words() {
    for (yaml, wanted) in [
        ("versions: stable", "expected a list"),
        ("versions: [a]\nlabel: strict", "expected a mapping"),
        (
            "versions: [a]\nroutes:\n  - { name: r, to: [a] }",
            "expected a string",
        ),
    ] {
        let e = Config::from_yaml(yaml).expect_err(yaml);
        let (_, message) = parse_error(&e);
        assert!(message.contains(wanted), "{message}");
        // With the parser's position and the line, as before.
        assert!(
            message.contains("line ") && message.contains(" | "),
            "{message}"
        );
        assert!(!message.contains(" start"), "{message}");
    }
}

#[test]
fn files_name_themselves_in_errors() {
    let dir = temp_dir("validation");
    let bad = dir.join("rules.yaml");
    std::fs::write(
        &bad,
        "versions: [stable]\nroutes:\n  - { name: r, to: nope }\n",
    )
    .unwrap();
    let msg = Gray::from_path(&bad).expect_err("invalid").to_string();
    assert!(
        msg.contains("rules.yaml") && msg.contains("route \"r\"") && msg.contains("to"),
        "{msg}"
    );
    assert!(matches!(
        Config::from_path(dir.join("rules.ini")),
        Err(Error::UnknownFormat { .. })
    ));
    assert!(matches!(
        Config::from_path(dir.join("missing.yaml")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn a_refused_reload_keeps_the_rules_in_force() {
    let gray = design();
    let tester = req("/", &[("x-app-version", "beta")]);
    assert_eq!(gray.decide(&tester).version(), "canary");
    let before = gray.config();

    let bad = Config::from_yaml(&with_route("  - { name: testers, to: nowhere }")).unwrap();
    assert!(gray.reload(bad).is_err());
    assert!(
        gray.reload_from_path(rules_path().with_extension("missing.yaml"))
            .is_err()
    );

    assert_eq!(gray.config(), before);
    assert_eq!(gray.decide(&tester).version(), "canary");
    assert_eq!(gray.decide(&tester).route(), Some("testers"));
}

#[test]
fn every_problem_is_told_outside_routes_and_in_each_part_of_a_route() {
    let yaml = r#"
label: { header: "x gray" }
real_ip: { trusted: [10.0.0.0/33] }
versions: [stable, canary]
routes:
  - name: a                          # a problem in its action, three in its match
    match: { headers: [{ name: x-a, regex: "(" }, { name: "x b", exact: y }], method: "G T", path: { exact: /a } }
    to: beta
  - { name: b, to: canary }          # fine
  - { name: c, split: { weights: { stable: 90, canary: 20 } } }
  - { name: b, to: beta }            # a second `b`, its body checked as well
  - name: d                          # a weight, the key and the cookie: the sum is not told
    split: { by: { header: "x y" }, weights: { stable: 50, beta: 50 }, set_cookie: {} }
  - { name: e, to: canary, mirror: { to: canary, percent: 150 } }
"#;
    let e = refuse(yaml);
    assert_eq!(
        told(&e),
        [
            (None, "label.header"),
            (None, "real_ip.trusted[0]"),
            (Some("a"), "match.headers[0].regex"),
            (Some("a"), "match.headers[1].name"),
            (Some("a"), "match.method"),
            (Some("a"), "to"),
            (Some("c"), "split.weights"),
            (Some("b"), "name"),
            (Some("b"), "to"),
            (Some("d"), "split.weights.beta"),
            (Some("d"), "split.by.header"),
            (Some("d"), "split.set_cookie"),
            (Some("e"), "mirror.to"),
            (Some("e"), "mirror.percent"),
        ]
    );
    // `invalid()` is the first; in the message, each starts a line of its own (a regex's
    // error, with its caret, takes more than one).
    assert_eq!(e.invalid().map(|i| i.field.as_str()), Some("label.header"));
    let each: Vec<String> = e.problems().map(ToString::to_string).collect();
    assert_eq!(e.to_string(), each.join("\n"));
    assert!(each[6].starts_with("route \"c\": split.weights: weights sum to 110"));
    assert!(each[7].starts_with("route \"b\": name: duplicate"));

    // From a file, each names it; a refused reload records them all.
    let dir = temp_dir("every-problem");
    let path = dir.join("rules.yaml");
    std::fs::write(&path, yaml).unwrap();
    let g = design();
    let e = g.reload_from_path(&path).unwrap_err();
    assert_eq!(e.problems().count(), 14);
    let message = e.to_string();
    let file = path.display().to_string();
    let each: Vec<String> = e.problems().map(|p| format!("{file}: {p}")).collect();
    assert_eq!(message, each.join("\n"));
    assert_eq!(g.reloads().last_error.as_deref(), Some(message.as_str()));
}

#[test]
fn problems_with_versions_are_told_alone() {
    // Every route refers to the versions: with them wrong, the routes' own problems would
    // be noise. Each bad version is told.
    let e = refuse("versions: [stable, stable, 'can ary']\nroutes: [{ name: a, to: beta }]\n");
    let told: Vec<&str> = e.problems().map(|p| p.field.as_str()).collect();
    assert_eq!(told, ["versions[1]", "versions[2]"], "{e}");
    assert_eq!(
        e.problems().map(|p| p.problem.clone()).collect::<Vec<_>>(),
        [
            Problem::DuplicateVersion("stable".into()),
            Problem::BadVersionName("can ary".into())
        ]
    );
}
