//! The `/ping` service on actix-web behind `GrayMiddleware`: the answer says which
//! version served it.
//!
//! ```text
//! cargo run -p examples --example actix              # rules: examples/rules.yaml
//! curl -H 'x-app-version: beta' localhost:8081/ping  # {"message":"pong","version":"canary"}
//! curl -H 'x-user-id: 7' localhost:8081/ping         # {"message":"pong","version":"stable"}
//! ```
//!
//! Options: `--config FILE` (default: the embedded `examples/rules.yaml`),
//! `--listen ADDR` (default `127.0.0.1:8081`).

use std::net::SocketAddr;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use gray_actix::{GrayMiddleware, GrayVersion};
use gray_core::Config;
use lexopt::prelude::*;

async fn ping(GrayVersion(ctx): GrayVersion) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(format!(
            r#"{{"message":"pong","version":"{}"}}"#,
            ctx.version()
        ))
}

/// The service, bound to `listen` (not yet running: await it), and the addresses it is
/// bound to.
pub(crate) fn server(
    gray: gray_core::Gray,
    listen: &str,
) -> std::io::Result<(Server, Vec<SocketAddr>)> {
    let server = HttpServer::new(move || {
        App::new()
            .wrap(GrayMiddleware::new(gray.clone()).echo_version(true))
            .route("/ping", web::get().to(ping))
    })
    .bind(listen)?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = None;
    let mut listen = "127.0.0.1:8081".to_owned();
    let mut args = lexopt::Parser::from_env();
    while let Some(arg) = args.next()? {
        match arg {
            Long("config") => config = Some(args.value()?),
            Long("listen") => listen = args.value()?.string()?,
            _ => return Err(arg.unexpected().into()),
        }
    }
    let gray = match config {
        Some(path) => gray_core::Gray::from_path(path)?,
        None => gray_core::Gray::new(Config::from_yaml(include_str!("../rules.yaml"))?)?,
    };
    let (server, addrs) = server(gray, &listen)?;
    for addr in addrs {
        println!("listening on http://{addr}/ping");
        println!("  curl -H 'x-app-version: beta' http://{addr}/ping");
        println!("  curl -H 'x-user-id: 7' http://{addr}/ping");
    }
    server.await?;
    Ok(())
}
