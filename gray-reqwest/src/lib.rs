//! gray for reqwest: the request's version label on every outbound call, and an address
//! per version of a downstream service.
//!
//! A service behind `gray_tower::GrayLayer` (or `gray_actix::GrayMiddleware`) serves each
//! request inside its [`GrayContext`](gray_core::GrayContext). [`GrayPropagation`] reads it
//! and sets the label header (`x-gray-version`) and the `gray` member of W3C `baggage` on
//! every call made with the client, so the next service — run with `label.inherit:
//! always` — keeps the request on the same version: the whole call chain stays on one
//! version.
//!
//! ```
//! use gray_core::GrayContext;
//! use gray_reqwest::GrayPropagation;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(GrayPropagation::default())
//!     .build();
//!
//! # async fn handler(client: reqwest_middleware::ClientWithMiddleware) -> reqwest_middleware::Result<()> {
//! // In a handler: the label of the request being served goes along by itself.
//! client.get("http://orders.internal/api/orders").send().await?;
//!
//! // Outside a request (a background job), say which version explicitly.
//! client
//!     .get("http://orders.internal/api/orders")
//!     .with_extension(GrayContext::new("canary"))
//!     .send()
//!     .await?;
//! # Ok(())
//! # }
//! # drop(client);
//! ```
//!
//! Tasks started with `tokio::spawn` do not inherit the request's context; see
//! [`GrayContext::scope`](gray_core::GrayContext::scope) to carry it along.
#![deny(missing_docs)]

mod propagation;
mod upstreams;

pub use propagation::GrayPropagation;
pub use upstreams::{GrayUpstreams, Upstream, UpstreamError};
