//! The axum extractor (feature `axum`).

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use gray_core::GrayContext;
use http::StatusCode;
use http::request::Parts;

/// The request's [`GrayContext`], extracted in an axum handler.
///
/// Needs [`GrayLayer`](crate::GrayLayer) on the route; without it extraction fails with
/// [`MissingGrayLayer`], a `500` naming the problem. `Option<GrayVersion>` never fails.
/// `Extension<GrayContext>` works as well.
///
/// ```
/// use axum::{Router, routing::get};
/// use gray_tower::{GrayVersion, GrayLayer};
///
/// async fn ping(GrayVersion(ctx): GrayVersion) -> String {
///     format!("pong from {}", ctx.version())
/// }
///
/// # fn app(gray: gray_core::Gray) -> Router {
/// Router::new().route("/ping", get(ping)).layer(GrayLayer::new(gray))
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayVersion(pub GrayContext);

impl Deref for GrayVersion {
    type Target = GrayContext;

    fn deref(&self) -> &GrayContext {
        &self.0
    }
}

/// Rejection of the [`GrayVersion`] extractor: the request has no [`GrayContext`], because no
/// [`GrayLayer`](crate::GrayLayer) ran before the handler. Responds `500`.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct MissingGrayLayer;

impl std::fmt::Display for MissingGrayLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no GrayContext on this request: add `.layer(gray_tower::GrayLayer::new(gray))` \
             to the router",
        )
    }
}

impl std::error::Error for MissingGrayLayer {}

impl IntoResponse for MissingGrayLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Sync> FromRequestParts<S> for GrayVersion {
    type Rejection = MissingGrayLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        GrayContext::from_extensions(&parts.extensions)
            .map(GrayVersion)
            .ok_or(MissingGrayLayer)
    }
}

impl<S: Sync> OptionalFromRequestParts<S> for GrayVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(GrayContext::from_extensions(&parts.extensions).map(GrayVersion))
    }
}
