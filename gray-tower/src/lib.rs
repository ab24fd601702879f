//! gray for tower and axum: [`GrayLayer`] decides which version serves each request and
//! carries it inward; [`GraySplit`] sends each version to its own service.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use gray_core::{Config, Gray, GrayContext};
//! use gray_tower::GrayLayer;
//! use tower::ServiceExt; // oneshot
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let gray = Gray::new(Config::from_yaml(r#"
//! versions: [stable, canary]
//! routes:
//!   - name: testers
//!     match: { headers: [{ name: x-app-version, exact: beta }] }
//!     to: canary
//!   - name: users
//!     split: { by: { header: x-user-id }, weights: { stable: 90, canary: 10 } }
//! "#)?)?;
//!
//! let app = Router::new()
//!     .route("/ping", get(|| async {
//!         // Anywhere in the request's task: the handler, what it awaits, an HTTP client.
//!         GrayContext::current().map(|ctx| ctx.version().to_owned()).unwrap_or_default()
//!     }))
//!     .layer(GrayLayer::new(gray));
//!
//! let req = http::Request::get("/ping").header("x-app-version", "beta").body(Body::empty())?;
//! let res = app.oneshot(req).await?;
//! let body = axum::body::to_bytes(res.into_body(), 1024).await?;
//! assert_eq!(body, "canary");
//! # Ok(())
//! # }
//! ```
//!
//! In a handler the version is also in the request extensions (`Extension<GrayContext>`)
//! and, with feature `axum`, in the [`GrayVersion`] extractor.
//!
//! # Seeing the versions
//! `GrayLayer::new(gray).metrics(true)` counts every request under its version (status
//! class, latency) for `gray.metrics()` and Prometheus; `.trace(true)` serves each request
//! in a `tracing` span `gray{version, route}`, so every log line carries the version.
//!
//! # Spawned tasks
//! [`GrayContext::current`] reads a tokio task-local, which `tokio::spawn` does not
//! inherit — nor does anything that spawns for you, such as axum's
//! `WebSocketUpgrade::on_upgrade`, whose callback runs in a task of its own. Carry the
//! context into the task yourself:
//!
//! ```
//! use gray_core::GrayContext;
//!
//! # async fn handler() {
//! let ctx = GrayContext::current();
//! tokio::spawn(async move {
//!     let work = async { /* outbound calls here carry the label */ };
//!     match ctx {
//!         Some(ctx) => GrayContext::scope(ctx, work).await,
//!         None => work.await,
//!     }
//! });
//! # }
//! ```
//!
//! A WebSocket's socket in axum, so that every call made while it is open carries the
//! label of the request that opened it (`tests/websocket.rs` runs this):
//!
//! ```ignore
//! async fn chat(GrayVersion(ctx): GrayVersion, ws: WebSocketUpgrade) -> Response {
//!     ws.on_upgrade(move |socket| GrayContext::scope(ctx, handle(socket)))
//! }
//! ```
//!
//! # Streamed bodies
//! A response body produced after the handler returns (server-sent events, a body from a
//! stream, a gRPC server stream) is polled by the server outside the handler's scope:
//! wrap it in [`GrayBody`] with the request's context, or every response with
//! [`GrayBodyLayer`] inside `GrayLayer`, so that calls made while producing it carry the
//! label too.
//!
//! # Labels on outbound calls
//! [`GrayPropagationLayer`] on a tower HTTP client (hyper-util's `Client`, a tonic
//! `Channel`), or `gray_reqwest::GrayPropagation` on a `reqwest_middleware` client, sets
//! the label header (and W3C `baggage`) from [`GrayContext::current`], so the next
//! service, run with `label.inherit: always`, keeps the request on the same version.
//!
//! # gRPC (tonic)
//! A tonic server is a tower service over `http` requests, and a tonic `Channel` a tower
//! HTTP client, so both sides of a gRPC hop work as they do over HTTP; the label travels
//! as metadata, and handlers read it from [`GrayContext::current`] or the request's
//! extensions (`tests/grpc.rs` runs such a chain):
//!
//! ```ignore
//! // The server: every call decided, its handler run inside the decision.
//! tonic::transport::Server::builder()
//!     .layer(GrayLayer::new(gray))
//!     .add_service(GreeterServer::new(greeter))
//!     .serve(addr).await?;
//! // The client: every call carries the label of the request being served.
//! let channel = GrayPropagationLayer::default().layer(Endpoint::from_static(url).connect().await?);
//! let mut client = GreeterClient::new(channel);
//! ```
//!
//! tonic keeps the connection's address in its own `TcpConnectInfo`; for rules on the
//! client's address (`match.client_ip`), hand it on as a [`PeerAddr`](gray_core::PeerAddr)
//! in front of `GrayLayer` (`tests/grpc.rs` runs this):
//!
//! ```ignore
//! let stack = tower::ServiceBuilder::new()
//!     .map_request(|mut req: http::Request<tonic::body::Body>| {
//!         let info = req.extensions().get::<TcpConnectInfo>();
//!         if let Some(peer) = info.and_then(TcpConnectInfo::remote_addr) {
//!             req.extensions_mut().insert(gray_core::PeerAddr(peer));
//!         }
//!         req
//!     })
//!     .layer(GrayLayer::new(gray));
//! tonic::transport::Server::builder().layer(stack).add_service(GreeterServer::new(greeter));
//! ```
//!
//! Where each version of the next service has its own address, put one `Channel` per
//! version behind [`GraySplit`]: each call goes to the current version's
//! ([`GraySplit`'s client-side example](GraySplit#on-the-client-side-one-upstream-per-version)).
//!
//! [`GrayContext::current`]: gray_core::GrayContext::current
#![deny(missing_docs)]
// On docs.rs: mark what a feature brings.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod layer;
mod propagation;
mod split;
mod view;

pub use body::{GrayBody, GrayBodyFuture, GrayBodyLayer, GrayBodyService};
#[cfg(feature = "axum")]
pub use extract::{GrayVersion, MissingGrayLayer};
pub use future::ResponseFuture;
pub use layer::{GrayLayer, GrayService};
pub use propagation::{GrayPropagationLayer, GrayPropagationService};
pub use split::GraySplit;
