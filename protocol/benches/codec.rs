//! Decoding is the first step of every message cloud ingest handles. Measured beside
//! an untyped `serde_json::Value` parse of the same bytes, the cheapest way to look at
//! the payload at all, so the cost of typing and validation reads as a ratio.
//!
//! `cargo bench -p protocol --bench codec`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use protocol::{decode, encode, examples, Limits};

fn codec(c: &mut Criterion) {
    let limits = Limits::default();
    let hb = examples::heartbeat();
    let bytes = encode(&hb).unwrap();
    let topic = format!("fleet/acme/{}/heartbeat", hb.device_id);
    let ev = examples::reboot_event();
    let ev_bytes = encode(&ev).unwrap();
    let ev_topic = format!("fleet/acme/{}/event", ev.device_id);

    let mut g = c.benchmark_group("heartbeat");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("baseline_untyped_value_parse", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap())
    });
    g.bench_function("decode_validated", |b| {
        b.iter(|| decode(black_box(&topic), black_box(&bytes), &limits).unwrap())
    });
    g.bench_function("encode_validated", |b| {
        b.iter(|| encode(black_box(&hb)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("reboot_event");
    g.throughput(Throughput::Bytes(ev_bytes.len() as u64));
    g.bench_function("baseline_untyped_value_parse", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&ev_bytes)).unwrap())
    });
    g.bench_function("decode_validated", |b| {
        b.iter(|| decode(black_box(&ev_topic), black_box(&ev_bytes), &limits).unwrap())
    });
    g.finish();

    let mut bad = bytes.clone();
    bad.truncate(bytes.len() / 2);
    c.bench_function("heartbeat/reject_truncated", |b| {
        b.iter(|| decode(black_box(&topic), black_box(&bad), &limits).unwrap_err())
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
