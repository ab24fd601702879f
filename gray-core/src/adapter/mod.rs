//! The contract every adapter implements, in one place, so that each is thin: a server
//! adapter (`gray-tower`'s `GrayLayer`, `gray-actix`'s `GrayMiddleware`) turns each
//! request's decision into a [`Labeling`] — what to write on the request — and keeps its
//! [`Finish`] for the response; a client adapter (`gray-reqwest`, `gray-tower`'s
//! `GrayPropagationLayer`) writes the current context's label on each outbound call with
//! [`Propagation`].
//!
//! A server adapter for an `http` 1.x server, whole (an async one runs the inner
//! service's future in [`GrayContext::scope`](crate::GrayContext::scope) and calls
//! [`Finish::enter`] around each poll; see `gray-tower`'s `GrayService`):
//!
//! ```
//! use gray_core::adapter::{Labeling, Options};
//! use gray_core::{Config, Gray, GrayContext};
//!
//! fn serve(
//!     gray: &Gray,
//!     options: Options,
//!     mut req: http::Request<()>,
//!     handler: impl FnOnce(http::Request<()>) -> http::Response<()>,
//! ) -> http::Response<()> {
//!     // On the way in: decide once; the label header, `baggage`, the context and a mirror.
//!     let (ctx, mut finish) = Labeling::decide(gray, &req, options).apply(&mut req);
//!     // The handler, inside the context (and the span, when tracing).
//!     let mut res = GrayContext::sync_scope(ctx, || finish.in_scope(|| handler(req)));
//!     // On the way out: count it, echo the version, give a new client its cookie.
//!     finish.response(res.status().as_u16(), res.headers_mut());
//!     res
//! }
//!
//! let gray = Gray::new(Config::from_yaml(
//!     "versions: [stable, canary]\nroutes: [{ name: all, to: canary }]\n",
//! )?)?;
//! let req = http::Request::get("/").header("x-gray-version", "spoofed").body(())?;
//! let res = serve(&gray, Options::new().echo(true).metrics(true), req, |req| {
//!     assert_eq!(req.headers()["x-gray-version"], "canary"); // overwritten
//!     assert_eq!(GrayContext::current().map(|c| c.version().to_owned()).as_deref(), Some("canary"));
//!     http::Response::new(())
//! });
//! assert_eq!(res.headers()["x-gray-version"], "canary");
//! assert_eq!(gray.metrics().version("canary").map(|v| v.total()), Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A server whose requests are not `http` 1.x types implements
//! [`RequestView`](crate::RequestView) for its request and [`Headers`] for its header map,
//! calls [`Labeling::write`] and puts the context and mirror in its own extensions
//! (`gray-actix` does, for actix-web's `http` 0.2 types).

#[cfg(feature = "contract")]
pub mod contract;
mod finish;
mod labeling;
mod options;
mod propagation;

pub use finish::Finish;
pub use labeling::Labeling;
pub use options::Options;
pub use propagation::Propagation;

pub use crate::label::Headers;
