//! Rules built in code are the rules the file would give: every constructor and method of
//! the config types, each against the YAML that says the same.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use gray_core::Config;
use gray_core::rules::{
    ClientIpMatch, Inherit, LabelConfig, Match, MirrorConfig, PathMatch, RealIpConfig, Route,
    SetCookieConfig, Split, SplitBy, ValueMatch,
};

#[test]
fn the_example_rules_built_in_code_are_the_file() {
    let built = Config::new(["stable", "canary"])
        .label(
            LabelConfig::default()
                .header("x-gray-version")
                .inherit(Inherit::Never),
        )
        .route(
            Route::to("testers", "canary")
                .matching(Match::new().header(ValueMatch::exact("x-app-version", "beta"))),
        )
        .route(
            Route::to("premium-active", "canary").matching(
                Match::new()
                    .header(ValueMatch::exact("x-user-tier", "premium"))
                    .header(ValueMatch::regex("x-activity-level", "^high")),
            ),
        )
        .route(Route::split(
            "users",
            Split::new([("stable", 90.0), ("canary", 10.0)])
                .by(SplitBy::Header("x-user-id".into())),
        ));
    let file = Config::from_yaml(include_str!("../../examples/rules.yaml")).unwrap();
    assert_eq!(built, file);
}

#[test]
fn every_part_built_in_code_is_what_the_file_says() {
    let built = Config::new(["stable", "canary"])
        .label(
            LabelConfig::default()
                .header("x-version")
                .inherit(Inherit::Always)
                .baggage(false)
                .from(["10.0.0.0/8"]),
        )
        .real_ip(RealIpConfig::new(["10.0.0.0/8"]).header("x-real-ip"))
        .route(
            Route::to("all", "canary")
                .matching(
                    Match::new()
                        .query(ValueMatch::prefix("uid", "7"))
                        .cookie(ValueMatch::present("beta", true).inverted())
                        .path(PathMatch::prefix("/api").inverted())
                        .method("GET")
                        .client_ip(ClientIpMatch::new(["192.0.2.0/24"]).inverted()),
                )
                .mirror(MirrorConfig::new("stable", 5.0)),
        )
        .route(
            Route::split(
                "visitors",
                Split::new([("stable", 50.0), ("canary", 50.0)])
                    .by(SplitBy::Cookie("gray-uid".into()))
                    .salt("exp1")
                    .set_cookie(
                        SetCookieConfig::default()
                            .max_age(60)
                            .path("/shop")
                            .domain("example.com")
                            .secure(true),
                    ),
            )
            .matching(
                Match::new()
                    .path(PathMatch::exact("/"))
                    .path(PathMatch::regex("^/$")),
            ),
        );
    let file = Config::from_yaml(
        r#"
label: { header: x-version, inherit: always, baggage: false, from: [10.0.0.0/8] }
real_ip: { header: x-real-ip, trusted: [10.0.0.0/8] }
versions: [stable, canary]
routes:
  - name: all
    match:
      query: [{ name: uid, prefix: "7" }]
      cookies: [{ name: beta, present: true, invert: true }]
      path: { prefix: /api, invert: true }
      method: GET
      client_ip: { cidr: [192.0.2.0/24], invert: true }
    to: canary
    mirror: { to: stable, percent: 5 }
  - name: visitors
    match: { path: { regex: "^/$" } }
    split:
      by: { cookie: gray-uid }
      weights: { stable: 50, canary: 50 }
      salt: exp1
      set_cookie: { max_age: 60, path: /shop, domain: example.com, secure: true }
"#,
    )
    .unwrap();
    assert_eq!(built, file);
    built.validate().unwrap();
}
