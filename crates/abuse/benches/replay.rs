//! Engine throughput on a simulated log generated in-process (goal: at least 1M events/s on one
//! core). Decoding JSON is measured separately, as it is not part of the server's message path.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sirr_abuse::sim::{SimConfig, simulate};
use sirr_abuse::{Engine, EngineConfig, parse_line};

fn replay(c: &mut Criterion) {
    let pop = simulate(&SimConfig {
        seed: 301,
        ..SimConfig::default()
    });
    let events = pop.events;
    let lines: Vec<String> = events.iter().map(|e| e.to_json()).collect();
    let mut group = c.benchmark_group("abuse");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("engine_observe", |b| {
        b.iter(|| {
            let mut engine = Engine::new(EngineConfig::default()).expect("default config");
            let mut decisions = 0usize;
            for e in &events {
                decisions += engine.observe(e).count();
            }
            std::hint::black_box(decisions)
        })
    });
    group.bench_function("decode_json_lines", |b| {
        b.iter(|| {
            lines
                .iter()
                .enumerate()
                .filter(|(i, l)| parse_line(l, *i as u64).is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
