//! What the benches in `benches/` and the workloads in `examples/` share: the request
//! they send, the example rules, and the yardsticks `GrayLayer` is measured against —
//! [`Floor`], the least any middleware does to meet its contract, and tower-http's own
//! layers doing two of its four parts ([`tower_http_pair`]).
//!
//! ```
//! use tower::ServiceExt;
//!
//! let app = benches::Floor::new(benches::bare_router(), benches::design());
//! let res = tokio::runtime::Builder::new_current_thread()
//!     .build()?
//!     .block_on(app.oneshot(benches::request()))?;
//! assert_eq!(res.status(), 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod floor;

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use gray_core::Gray;
use http::HeaderValue;
use tower_http::add_extension::AddExtension;
use tower_http::set_header::SetRequestHeader;

pub use floor::Floor;

/// The request every layer bench sends: `GET /ping` with a `host`, a `user-agent` and the
/// `x-user-id` the example rules split by (this user is on `stable`).
pub fn request() -> http::Request<Body> {
    let req = http::Request::get("/ping")
        .header("host", "shop.example")
        .header("user-agent", "bench/1.0")
        .header("x-user-id", "user-48213")
        .body(Body::empty());
    match req {
        Ok(req) => req,
        Err(e) => panic!("bench request: {e}"),
    }
}

/// The example rules (`examples/rules.yaml`).
pub fn design() -> Gray {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    match Gray::from_path(&path) {
        Ok(gray) => gray,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// The bare app: an axum hello-world, `/ping` → `pong`.
pub fn bare_router() -> Router {
    Router::new().route("/ping", get(|| async { "pong" }))
}

/// The yardstick from tower-http: its own `SetRequestHeader` and `AddExtension` around
/// `inner`, doing two of `GrayLayer`'s four parts the usual way — set the label header
/// and add a `GrayContext` extension, both as `gray` decides [`request`] once, up front
/// (its own header name, value and context, cloned as cheaply as `GrayLayer`'s) — with no
/// decision per request and no task-local scope.
pub fn tower_http_pair<S>(
    gray: &Gray,
    inner: S,
) -> SetRequestHeader<AddExtension<S, gray_core::GrayContext>, HeaderValue> {
    let decision = gray.decide(&request());
    SetRequestHeader::overriding(
        AddExtension::new(inner, decision.context()),
        decision.label_header().clone(),
        decision.label_value().clone(),
    )
}
