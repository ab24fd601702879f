//! [`GrayVersion`]: the request's [`GrayContext`] as an actix-web extractor.

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use gray_core::GrayContext;

/// The request's [`GrayContext`], extracted in an actix-web handler.
///
/// Needs [`GrayMiddleware`](crate::GrayMiddleware); without it extraction fails with
/// [`MissingGrayMiddleware`] (`500`). `Option<GrayVersion>` never fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayVersion(pub GrayContext);

impl Deref for GrayVersion {
    type Target = GrayContext;

    fn deref(&self) -> &GrayContext {
        &self.0
    }
}

/// The request has no [`GrayContext`]: no [`GrayMiddleware`](crate::GrayMiddleware) ran
/// before the handler. Responds `500`.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct MissingGrayMiddleware;

impl std::fmt::Display for MissingGrayMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no GrayContext on this request: add `.wrap(gray_actix::GrayMiddleware::new(gray))` \
             to the App",
        )
    }
}

impl std::error::Error for MissingGrayMiddleware {}

impl ResponseError for MissingGrayMiddleware {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl FromRequest for GrayVersion {
    type Error = MissingGrayMiddleware;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ctx = req
            .extensions()
            .get::<GrayContext>()
            .cloned()
            .or_else(GrayContext::current);
        ready(ctx.map(GrayVersion).ok_or(MissingGrayMiddleware))
    }
}
