//! Two services in one process: the edge decides, its outbound call carries the label,
//! and the second service — trusting labels from the edge — stays on the same version.
//!
//! ```text
//! cargo run -p examples --example propagation
//! user 1     edge: stable  -> orders: stable
//! user 3     edge: canary  -> orders: canary
//! tester     edge: canary  -> orders: canary
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use gray_core::{Config, Gray, GrayContext};
use gray_reqwest::GrayPropagation;
use gray_tower::GrayLayer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

/// Serves `app` on an ephemeral loopback port.
async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

fn version() -> String {
    GrayContext::current().map_or_else(|| "-".to_owned(), |ctx| ctx.version().to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for line in run().await? {
        println!("{line}");
    }
    Ok(())
}

/// Starts both services, calls the edge as 20 users and a tester, and gives one line per
/// caller: the version the edge served and the one the orders service served.
pub(crate) async fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    // The second service: trusts a declared label from the edge.
    let orders_rules =
        Config::from_yaml("label: { inherit: always }\nversions: [stable, canary]\n")?;
    let orders = Router::new()
        .route("/orders", get(|| async { version() }))
        .layer(GrayLayer::new(Gray::new(orders_rules)?));
    let orders = serve(orders).await?;

    // The edge: the example rules; its handler calls the orders service.
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(GrayPropagation::default())
        .build();
    let edge_rules = Config::from_yaml(include_str!("../rules.yaml"))?;
    let edge = Router::new()
        .route(
            "/checkout",
            get(
                |State((client, orders)): State<(ClientWithMiddleware, SocketAddr)>| async move {
                    let theirs = match client.get(format!("http://{orders}/orders")).send().await {
                        Ok(res) => res.text().await.unwrap_or_else(|e| e.to_string()),
                        Err(e) => e.to_string(),
                    };
                    format!("edge: {:<7} -> orders: {theirs}", version())
                },
            ),
        )
        .with_state((client, orders))
        .layer(GrayLayer::new(Gray::new(edge_rules)?));
    let edge = serve(edge).await?;

    let outside = reqwest::Client::new();
    let mut callers: Vec<(String, (&str, String))> = (1..=20)
        .map(|id| (format!("user {id}"), ("x-user-id", id.to_string())))
        .collect();
    callers.push(("tester".to_owned(), ("x-app-version", "beta".to_owned())));
    let mut lines = Vec::new();
    for (who, (name, value)) in callers {
        let line = outside
            .get(format!("http://{edge}/checkout"))
            .header(name, value)
            .send()
            .await?
            .text()
            .await?;
        lines.push(format!("{who:<10} {line}"));
    }
    Ok(lines)
}
