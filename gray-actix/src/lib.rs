//! gray for actix-web 4: [`GrayMiddleware`] decides which version serves each request and
//! carries it inward; the [`GrayVersion`] extractor hands it to handlers.
//!
//! ```
//! use actix_web::{App, test, web};
//! use gray_actix::{GrayVersion, GrayMiddleware};
//! use gray_core::Config;
//!
//! # #[actix_web::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let gray = gray_core::Gray::new(Config::from_yaml(r#"
//! versions: [stable, canary]
//! routes:
//!   - name: testers
//!     match: { headers: [{ name: x-app-version, exact: beta }] }
//!     to: canary
//! "#)?)?;
//!
//! let app = test::init_service(
//!     App::new()
//!         .wrap(GrayMiddleware::new(gray))
//!         .route("/ping", web::get().to(|GrayVersion(ctx): GrayVersion| async move {
//!             format!("pong from {}", ctx.version())
//!         })),
//! )
//! .await;
//!
//! let req = test::TestRequest::get()
//!     .uri("/ping")
//!     .insert_header(("x-app-version", "beta"))
//!     .to_request();
//! let body = test::call_and_read_body(&app, req).await;
//! assert_eq!(body, "pong from canary");
//! # Ok(())
//! # }
//! ```
//!
//! Inside the middleware the rest of the chain runs in
//! [`GrayContext::scope`](gray_core::GrayContext::scope): a `gray_reqwest::GrayPropagation`
//! client called from a handler carries the label to the next service. actix's own client,
//! `awc`, has no middleware gray plugs into; there, set the label header from the current
//! context yourself (name and version are both valid header text):
//!
//! ```ignore
//! let mut call = awc::Client::default().get("http://orders/api");
//! if let Some(ctx) = gray_core::GrayContext::current() {
//!     call = call.insert_header(("x-gray-version", ctx.version()));
//! }
//! ```
//!
//! A task spawned from a handler (`actix_web::rt::spawn`, or a WebSocket session that
//! `actix-ws` handles in a task of its own) does not inherit that scope: carry the context
//! into it.
//!
//! ```
//! use gray_core::GrayContext;
//!
//! # #[actix_web::main]
//! # async fn main() {
//! # GrayContext::scope(GrayContext::new("canary"), async {
//! // In a handler:
//! let ctx = GrayContext::current();
//! let task = actix_web::rt::spawn(async move {
//!     let work = async { /* calls here carry the label */ GrayContext::current() };
//!     match ctx {
//!         Some(ctx) => GrayContext::scope(ctx, work).await,
//!         None => work.await,
//!     }
//! });
//! # let seen = task.await.unwrap();
//! # assert_eq!(seen.as_ref().map(GrayContext::version), Some("canary"));
//! # }).await;
//! # }
//! ```
//!
//! A streamed response (`HttpResponse::streaming`) is polled after the handler returns,
//! outside that scope: wrap its stream in [`GrayStream`] with the request's context, so
//! that calls made while producing its items carry the label and log lines the version.
//!
//! actix-web 4 is on `http` 0.2; [`ActixRequest`] bridges its request to gray-core's
//! `RequestView`, and all routing logic stays in gray-core.
#![deny(missing_docs)]

mod extract;
mod middleware;
mod stream;
mod view;

pub use extract::{GrayVersion, MissingGrayMiddleware};
pub use middleware::{GrayMiddleware, GrayMiddlewareService, ResponseFuture};
pub use stream::GrayStream;
pub use view::ActixRequest;
