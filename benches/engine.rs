//! Per-stage costs on one core, on the bundled SecureCart demo capture:
//! frame parsing, and the whole engine (NACLs, SGs, connection tracking) plus
//! flow-log aggregation. Run with `cargo bench`; figures go in README.md.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // not the core: see clippy.toml
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::sync::Arc;
use vpcgate::capture::CaptureReader;
use vpcgate::engine::Engine;
use vpcgate::flowlog::Aggregator;
use vpcgate::policy::Policy;
use vpcgate::wire::packet::{parse, Timestamp};

fn load_frames() -> Vec<(Timestamp, u32, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut r = CaptureReader::open(&root.join("pcaps/securecart.pcap")).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        v.push((p.ts, p.link_type, p.data.to_vec()));
    }
    v
}

fn benches(c: &mut Criterion) {
    let frames = load_frames();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let vpc = vpcgate::load::load_paths(&[root.join("rulesets/securecart.toml")]).unwrap();
    let mut ids: Vec<String> = vpc
        .network_interfaces
        .iter()
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    let policy = Arc::new(Policy::compile(Arc::new(vpc), &ids));
    let packets: Vec<_> = frames
        .iter()
        .filter_map(|(ts, lt, f)| parse(*lt, f).ok().map(|p| (*ts, p)))
        .collect();

    let mut g = c.benchmark_group("securecart-demo");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for (_, lt, f) in &frames {
                n += parse(*lt, f).map_or(0, |p| p.ip_len);
            }
            n
        })
    });
    g.throughput(Throughput::Elements(packets.len() as u64));
    g.bench_function("engine+aggregation", |b| {
        b.iter(|| {
            let mut engine = Engine::new(policy.clone());
            let mut agg = Aggregator::new(600);
            for (seq, (ts, p)) in packets.iter().enumerate() {
                let d = engine.process(p, *ts);
                for o in d.obs.iter().flatten() {
                    agg.observe(o, *ts, seq as u64);
                }
            }
            agg.open_records()
        })
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
