//! Criterion micro-benchmarks of the rANS entropy coders, the codec's hot loops: order-0 and
//! order-1 encode and decode of 1 MiB of skewed bytes (a bf16 exponent-like distribution).
//!
//! `cargo bench -p zt-codec --bench rans` (`-- --quick` for a short run).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zt_codec::rans;

const LEN: usize = 1 << 20;

/// Bytes around 120 with a geometric-like spread, as the exponents of trained weights are.
fn skewed(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // The number of trailing zeros of a random word is geometric (p = 1/2).
            let spread = (state.trailing_zeros() as u8).min(20);
            if state >> 63 == 0 {
                120 - spread
            } else {
                121 + spread
            }
        })
        .collect()
}

fn rans_benches(c: &mut Criterion) {
    let data = skewed(LEN);
    let mut group = c.benchmark_group("rans");
    group.throughput(Throughput::Bytes(LEN as u64));

    let hist = rans::histogram(&data);
    let mut o0 = Vec::new();
    rans::encode_o0(&data, &hist, &mut o0);
    let mut o1 = Vec::new();
    rans::encode_o1(&data, &mut o1);
    let mut out = vec![0u8; LEN];
    rans::decode_o0(&o0, &mut out).expect("order-0 round trip");
    assert_eq!(out, data);
    rans::decode_o1(&o1, &mut out).expect("order-1 round trip");
    assert_eq!(out, data);

    group.bench_function("order0/encode", |b| {
        let mut buf = Vec::with_capacity(o0.len() + 1024);
        b.iter(|| {
            buf.clear();
            rans::encode_o0(black_box(&data), &rans::histogram(&data), &mut buf);
        });
    });
    group.bench_function("order0/decode", |b| {
        b.iter(|| rans::decode_o0(black_box(&o0), &mut out).expect("decoding"));
    });
    group.bench_function("order1/encode", |b| {
        let mut buf = Vec::with_capacity(o1.len() + 1024);
        b.iter(|| {
            buf.clear();
            rans::encode_o1(black_box(&data), &mut buf);
        });
    });
    group.bench_function("order1/decode", |b| {
        b.iter(|| rans::decode_o1(black_box(&o1), &mut out).expect("decoding"));
    });
    group.finish();
}

criterion_group!(benches, rans_benches);
criterion_main!(benches);
