//! The contract test every server adapter runs (feature `contract`): the same cases, each a
//! rules file, [`Options`], a request and the status the handler answers, checked against
//! what the adapter's handler saw and what its response carries.
//!
//! ```
//! use gray_core::GrayContext;
//! use gray_core::adapter::contract::{Seen, cases};
//! use gray_core::adapter::Labeling;
//!
//! // The least adapter: `Labeling` on an `http` request, the handler inline.
//! for case in cases() {
//!     let gray = case.gray();
//!     let mut req = case.request();
//!     let (ctx, mut finish) = Labeling::decide(&gray, &req, case.options()).apply(&mut req);
//!     let mut seen = Seen::of_request(req.headers(), req.extensions());
//!     let mut res = GrayContext::sync_scope(ctx, || {
//!         seen.current = GrayContext::current().map(|c| c.version().to_owned());
//!         case.response()
//!     });
//!     finish.response(res.status().as_u16(), res.headers_mut());
//!     seen.response(res.status().as_u16(), res.headers());
//!     case.check(&gray, &seen).unwrap_or_else(|e| panic!("{e}"));
//! }
//! ```

use http::{HeaderMap, HeaderName};

use super::options::Options;
use crate::context::GrayContext;
use crate::engine::Mirror;
use crate::gray::Gray;
use crate::label::{BAGGAGE_HEADER, DEFAULT_LABEL_HEADER};
use crate::rules::Config;

/// The header the contract's handler answers with beside its status: its own cookie,
/// which the adapter must keep when it appends its own.
pub const HANDLER_COOKIE: &str = "own=1";

/// One case of the contract.
#[derive(Clone, Debug)]
pub struct Case {
    name: &'static str,
    rules: &'static str,
    options: Options,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    expect: Expect,
}

/// What a case expects.
#[derive(Clone, Debug)]
struct Expect {
    label: &'static [&'static str],
    baggage: &'static [&'static str],
    version: &'static str,
    mirror: Option<&'static str>,
    echo: bool,
    new_cookie: bool,
    /// The request is counted (once, in its status class) under `version`.
    counted: bool,
}

/// What an adapter's handler saw of the request, and what its client got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The label header's values on the request, as the handler saw them.
    pub label: Vec<String>,
    /// The `baggage` header's values on the request.
    pub baggage: Vec<String>,
    /// The version of the [`GrayContext`] in the request's extensions.
    pub extension: Option<String>,
    /// The version of [`GrayContext::current`] in the handler.
    pub current: Option<String>,
    /// The version of the [`Mirror`] in the request's extensions.
    pub mirror: Option<String>,
    /// The response's status.
    pub status: u16,
    /// The label header's values on the response.
    pub response_label: Vec<String>,
    /// The response's `Set-Cookie` values.
    pub set_cookie: Vec<String>,
}

fn texts(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

impl Seen {
    /// What a handler sees of an `http` request: its headers and extensions (the caller
    /// sets [`current`](Self::current)).
    pub fn of_request(headers: &HeaderMap, extensions: &http::Extensions) -> Self {
        Self {
            label: texts(headers, &HeaderName::from_static(DEFAULT_LABEL_HEADER)),
            baggage: texts(headers, &BAGGAGE_HEADER),
            extension: extensions
                .get::<GrayContext>()
                .map(|c| c.version().to_owned()),
            mirror: extensions.get::<Mirror>().map(|m| m.version().to_owned()),
            ..Self::default()
        }
    }

    /// Notes the response as its client got it.
    pub fn response(&mut self, status: u16, headers: &HeaderMap) {
        self.status = status;
        self.response_label = texts(headers, &HeaderName::from_static(DEFAULT_LABEL_HEADER));
        self.set_cookie = texts(headers, &http::header::SET_COOKIE);
    }
}

const EDGE: &str = "versions: [stable, canary]\nroutes:\n  - name: testers\n    match: { headers: [{ name: x-app-version, exact: beta }] }\n    to: canary\n";
const INHERIT: &str = "label: { inherit: always }\nversions: [stable, canary]\n";

impl Case {
    /// The case's name, for a failure's message.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A `Gray` on the case's rules, new for each run (its metrics start at zero).
    pub fn gray(&self) -> Gray {
        Config::from_yaml(self.rules)
            .and_then(Gray::new)
            .unwrap_or_else(|e| panic!("the contract's rules for {:?}: {e}", self.name))
    }

    /// The adapter's options for the case.
    pub fn options(&self) -> Options {
        self.options
    }

    /// The request to send, `GET /`, with the case's headers in order.
    pub fn request(&self) -> http::Request<()> {
        let mut req = http::Request::new(());
        for (name, value) in self.headers {
            req.headers_mut().append(
                HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        req
    }

    /// The headers of [`request`](Self::request), for adapters on other types.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        self.headers
    }

    /// The status the handler answers with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The handler's response: [`status`](Self::status), and [`HANDLER_COOKIE`] in a
    /// `Set-Cookie` of its own.
    pub fn response(&self) -> http::Response<()> {
        let mut res = http::Response::new(());
        *res.status_mut() = http::StatusCode::from_u16(self.status).unwrap_or_default();
        res.headers_mut().append(
            http::header::SET_COOKIE,
            http::HeaderValue::from_static(HANDLER_COOKIE),
        );
        res
    }

    /// Whether `seen`, served by an adapter with [`gray`](Self::gray)'s `Gray`, is what the
    /// contract says; the error names the case and what differs.
    pub fn check(&self, gray: &Gray, seen: &Seen) -> Result<(), String> {
        let e = &self.expect;
        let mut wrong = Vec::new();
        let mut differ = |what: &str, got: String, want: String| {
            if got != want {
                wrong.push(format!("{what}: got {got}, want {want}"));
            }
        };
        differ(
            "the request's label",
            format!("{:?}", seen.label),
            format!("{:?}", e.label),
        );
        differ(
            "the request's baggage",
            format!("{:?}", seen.baggage),
            format!("{:?}", e.baggage),
        );
        differ(
            "the extension's version",
            format!("{:?}", seen.extension),
            format!("{:?}", Some(e.version)),
        );
        differ(
            "GrayContext::current",
            format!("{:?}", seen.current),
            format!("{:?}", Some(e.version)),
        );
        differ(
            "the mirror",
            format!("{:?}", seen.mirror),
            format!("{:?}", e.mirror),
        );
        differ(
            "the status",
            seen.status.to_string(),
            self.status.to_string(),
        );
        let echo: &[&str] = if e.echo { &[e.version] } else { &[] };
        differ(
            "the response's label",
            format!("{:?}", seen.response_label),
            format!("{echo:?}"),
        );
        let own = seen.set_cookie.first().map(String::as_str) == Some(HANDLER_COOKIE);
        let gray_cookie = seen
            .set_cookie
            .get(1)
            .is_some_and(|c| c.starts_with("gray-uid="));
        let cookies_ok = own
            && seen.set_cookie.len() == 1 + usize::from(e.new_cookie)
            && (!e.new_cookie || gray_cookie);
        if !cookies_ok {
            wrong.push(format!(
                "Set-Cookie: got {:?}, want the handler's {HANDLER_COOKIE:?}{}",
                seen.set_cookie,
                if e.new_cookie {
                    " then gray's gray-uid"
                } else {
                    " alone"
                }
            ));
        }
        let metrics = gray.metrics();
        let counted = metrics.version(e.version).map_or(0, |v| v.total());
        let class = usize::from(self.status / 100).clamp(1, 5) - 1;
        let in_class = metrics.version(e.version).map_or(0, |v| v.requests[class]);
        let want = u64::from(e.counted);
        if counted != want || in_class != want {
            wrong.push(format!(
                "metrics: {counted} counted under {}, want {want}",
                e.version
            ));
        }
        match wrong.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "contract case {:?}:\n  {}",
                self.name,
                wrong.join("\n  ")
            )),
        }
    }
}

/// Every case of the contract.
pub fn cases() -> Vec<Case> {
    let expect = Expect {
        label: &["stable"],
        baggage: &[],
        version: "stable",
        mirror: None,
        echo: false,
        new_cookie: false,
        counted: false,
    };
    let case = |name, rules, headers| Case {
        name,
        rules,
        options: Options::new(),
        headers,
        status: 200,
        expect: expect.clone(),
    };
    vec![
        Case {
            expect: Expect {
                baggage: &["userId=alice,gray=stable"],
                ..expect.clone()
            },
            ..case(
                "an edge overwrites a spoofed label, in its header and in baggage",
                EDGE,
                &[
                    ("x-gray-version", "canary"),
                    ("baggage", "gray=canary,userId=alice"),
                ],
            )
        },
        Case {
            options: Options::new().echo(true),
            expect: Expect {
                label: &["canary"],
                version: "canary",
                echo: true,
                ..expect.clone()
            },
            ..case(
                "a tester is routed, and the version echoed",
                EDGE,
                &[("x-app-version", "beta")],
            )
        },
        Case {
            expect: Expect {
                label: &["canary"],
                version: "canary",
                ..expect.clone()
            },
            ..case(
                "an honoured label is left as it came",
                INHERIT,
                &[("x-gray-version", "canary")],
            )
        },
        Case {
            expect: Expect {
                label: &["canary"],
                version: "canary",
                ..expect.clone()
            },
            ..case(
                "a repeated label is set to the one value that counts",
                INHERIT,
                &[("x-gray-version", "canary"), ("x-gray-version", "stable")],
            )
        },
        Case {
            expect: Expect {
                mirror: Some("canary"),
                ..expect.clone()
            },
            ..case(
                "a mirrored request carries its mirror",
                "versions: [stable, canary]\nroutes: [{ name: all, to: stable, mirror: { to: canary } }]\n",
                &[],
            )
        },
        Case {
            expect: Expect {
                new_cookie: true,
                ..expect.clone()
            },
            ..case(
                "a new client gets its key, after the handler's own cookie",
                "versions: [stable, canary]\nroutes:\n  - name: visitors\n    split: { by: { cookie: gray-uid }, weights: { stable: 100, canary: 0 }, set_cookie: {} }\n",
                &[],
            )
        },
        Case {
            options: Options::new().metrics(true),
            status: 503,
            expect: Expect {
                counted: true,
                ..expect.clone()
            },
            ..case(
                "a request is counted under its version and class",
                EDGE,
                &[],
            )
        },
        Case {
            status: 503,
            ..case("nothing is counted unless asked", EDGE, &[])
        },
    ]
}
