//! The contract every server adapter meets (`gray_core::adapter::contract`), run against
//! `GrayLayer` around a tower service.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use gray_core::GrayContext;
use gray_core::adapter::contract::{Seen, cases};
use gray_tower::GrayLayer;
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test]
async fn gray_layer_meets_the_contract() {
    for case in cases() {
        let gray = case.gray();
        let options = case.options();
        let layer = GrayLayer::new(gray.clone())
            .echo_version(options.echo_on())
            .metrics(options.metrics_on())
            .trace(options.trace_on());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let handler = {
            let (seen, case) = (Arc::clone(&seen), case.clone());
            service_fn(move |req: http::Request<()>| {
                let (seen, case) = (Arc::clone(&seen), case.clone());
                async move {
                    // After an await too: the task-local stays.
                    tokio::task::yield_now().await;
                    let mut handler_saw = Seen::of_request(req.headers(), req.extensions());
                    handler_saw.current = GrayContext::current().map(|c| c.version().to_owned());
                    *seen.lock().unwrap() = handler_saw;
                    Ok::<_, Infallible>(case.response())
                }
            })
        };
        let res = layer.layer(handler).oneshot(case.request()).await.unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.response(res.status().as_u16(), res.headers());
        case.check(&gray, &seen).unwrap_or_else(|e| panic!("{e}"));
    }
}
