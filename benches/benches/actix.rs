//! One request through an actix-web `test::init_service` app, bare and behind
//! `GrayMiddleware`.
//!
//! `cargo bench -p benches --bench actix`

use std::hint::black_box;
use std::path::PathBuf;

use actix_web::{App, test, web};
use criterion::{Criterion, criterion_group, criterion_main};
use gray_actix::GrayMiddleware;
use gray_core::Gray;

fn actix(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/rules.yaml");
    let gray = match Gray::from_path(&path) {
        Ok(gray) => gray,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let system = actix_web::rt::System::new();
    let bare = system.block_on(test::init_service(
        App::new().route("/ping", web::get().to(|| async { "pong" })),
    ));
    let layered = system.block_on(test::init_service(
        App::new()
            .wrap(GrayMiddleware::new(gray))
            .route("/ping", web::get().to(|| async { "pong" })),
    ));
    let request = || {
        test::TestRequest::get()
            .uri("/ping")
            .insert_header(("user-agent", "bench/1.0"))
            .insert_header(("x-user-id", "user-48213"))
            .to_request()
    };
    let mut group = c.benchmark_group("actix");
    group.bench_function("bare", |b| {
        b.iter(|| {
            black_box(
                system
                    .block_on(test::call_service(&bare, request()))
                    .status(),
            )
        })
    });
    group.bench_function("gray-middleware", |b| {
        b.iter(|| {
            black_box(
                system
                    .block_on(test::call_service(&layered, request()))
                    .status(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, actix);
criterion_main!(benches);
