//! `Gray::reload` of a 1,000-route config (target: < 5 ms), and parsing it.
//!
//! `cargo bench -p benches --bench reload`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gray_core::{Config, Gray};

/// 1,000 routes: header, prefix, regex and query matches, and keyed splits.
fn thousand_routes() -> String {
    let mut yaml = String::from("versions: [stable, canary, v2]\nroutes:\n");
    for i in 0..1000 {
        let route = match i % 4 {
            0 => format!(
                "  - {{ name: r{i}, match: {{ headers: [{{ name: x-tenant-{i}, exact: t{i} }}] }}, to: canary }}\n"
            ),
            1 => format!(
                "  - {{ name: r{i}, match: {{ path: {{ prefix: /api/{i}/ }}, headers: [{{ name: x-tier, prefix: gold }}] }}, to: v2 }}\n"
            ),
            2 => format!(
                "  - {{ name: r{i}, match: {{ headers: [{{ name: x-region, regex: '^eu-(west|north)-{i}$' }}] }}, to: canary }}\n"
            ),
            _ => format!(
                "  - {{ name: r{i}, match: {{ query: [{{ name: cohort, exact: c{i} }}] }}, split: {{ by: {{ header: x-user-id }}, weights: {{ stable: 80, canary: 15, v2: 5 }} }} }}\n"
            ),
        };
        yaml.push_str(&route);
    }
    yaml
}

fn reload(c: &mut Criterion) {
    let yaml = thousand_routes();
    let config = match Config::from_yaml(&yaml) {
        Ok(config) => config,
        Err(e) => panic!("1,000-route config: {e}"),
    };
    let gray = match Gray::new(config.clone()) {
        Ok(gray) => gray,
        Err(e) => panic!("1,000-route config: {e}"),
    };
    let mut group = c.benchmark_group("reload-1000-routes");
    group.bench_function("validate+compile+swap", |b| {
        b.iter_batched(
            || config.clone(),
            |config| black_box(gray.reload(config).is_ok()),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("parse-yaml", |b| {
        b.iter(|| black_box(Config::from_yaml(black_box(&yaml)).is_ok()))
    });
    group.finish();
}

criterion_group!(benches, reload);
criterion_main!(benches);
