//! A WebSocket behind GrayLayer, on a real axum server with real clients: axum runs the
//! socket in a task of its own, which does not inherit the request's context; scoped as
//! the crate docs show, the socket's outbound calls carry the label.
#![allow(clippy::unwrap_used)] // tests: a failed step is a failed test

mod common;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use common::{edge, serve};
use futures_util::StreamExt;
use gray_core::GrayContext;
use gray_reqwest::GrayPropagation;
use gray_tower::{GrayLayer, GrayVersion};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// For each text message: a call to `url` through the propagating client, and back on the
/// socket the label the next service received (`-` for none) and the task's own context.
async fn relay(mut socket: WebSocket, client: ClientWithMiddleware, url: String) {
    while let Some(Ok(Message::Text(_))) = socket.recv().await {
        let label = client.get(&url).send().await.unwrap().text().await.unwrap();
        let current = GrayContext::current().map_or("-".to_owned(), |c| c.version().to_owned());
        if socket
            .send(Message::text(format!("{label}|{current}")))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test]
async fn a_scoped_socket_carries_the_label_on_its_calls() {
    // The next service: answers the label it received.
    let next = serve(Router::new().route(
        "/label",
        get(|headers: http::HeaderMap| async move {
            headers
                .get("x-gray-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        }),
    ))
    .await;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(GrayPropagation::default())
        .build();
    let url = format!("http://{next}/label");

    let (scoped_client, scoped_url) = (client.clone(), url.clone());
    let app = Router::new()
        .route(
            "/scoped",
            get(
                move |GrayVersion(ctx): GrayVersion, ws: WebSocketUpgrade| async move {
                    let response: Response = ws.on_upgrade(move |socket| {
                        GrayContext::scope(ctx, relay(socket, scoped_client, scoped_url))
                    });
                    response
                },
            ),
        )
        .route(
            "/unscoped",
            get(move |ws: WebSocketUpgrade| async move {
                let response: Response = ws.on_upgrade(move |socket| relay(socket, client, url));
                response
            }),
        )
        .layer(GrayLayer::new(edge()));
    let addr = serve(app).await;

    // A tester's socket: canary, its calls labelled canary, however long it stays open.
    for (path, want) in [("scoped", "canary|canary"), ("unscoped", "-|-")] {
        let mut request = format!("ws://{addr}/{path}").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-app-version", http::HeaderValue::from_static("beta"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        for round in 0..3 {
            futures_util::SinkExt::send(
                &mut socket,
                tokio_tungstenite::tungstenite::Message::text(format!("call {round}")),
            )
            .await
            .unwrap();
            let answer = socket.next().await.unwrap().unwrap();
            assert_eq!(answer.to_text().unwrap(), want, "{path}, round {round}");
        }
    }
}
