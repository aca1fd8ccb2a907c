//! Profiling driver: compresses and decompresses one workload of the codec benchmark's kinds in
//! a loop, at one effort, so that `perf record` sees only the codec.
//!
//! `cargo run --release -p zt-codec --example profile -- [WORKLOAD] [MB] [ROUNDS] [THREADS]
//! [EFFORT] [CHUNK_KIB]`
//!
//! WORKLOAD: bf16, f16, f32, sparse-bf16, sparse-f32, int8-bf16, int8-f32, int4-bf16,
//! int4-f32, delta-bf16 (5% of the weights changed against a base), ternary (-1, 0, 1 in
//! int8), int4-i8 (-8..=7 in int8). `ONLY=compress` or `ONLY=decompress` times one
//! direction only.

use std::time::Instant;

use zt_codec::{CompressOptions, DecompressOptions, Effort};
use zt_core::DType;

/// xorshift64 with Box-Muller Gaussians, as `cargo xtask bench-codec` draws them. (A sum of
/// four uniforms, used before, has lighter tails: its fp16 high bytes coded 0.4% smaller and
/// decoded 5% faster than the benchmark's, which hid how close fp16 decoding was to ZipNN.)
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn encode(values: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F16 => values
            .iter()
            .flat_map(|&v| half_bits(v).to_le_bytes())
            .collect(),
        _ => values
            .iter()
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
    }
}

fn half_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if e <= 0 {
        return sign;
    }
    sign | ((e as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

/// The workload's bytes, dtype and (for a delta) base.
fn workload(name: &str, bytes: usize) -> (Vec<u8>, DType, Option<Vec<u8>>) {
    if let Some(levels) = match name {
        "ternary" => Some(3.0),
        "int4-i8" => Some(16.0),
        _ => None,
    } {
        // As the compression benchmark's Ternary and Quantized int8: -1, 0 and 1, or -8..=7,
        // uniformly, in int8 storage.
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let low = (levels / 2.0) as i8;
        let data = (0..bytes)
            .map(|_| ((rng.unit() * levels) as i8 - low) as u8)
            .collect();
        return (data, DType::I8, None);
    }
    let (kind, dtype) = match name.rsplit_once('-') {
        Some((k, "f32")) => (k, DType::F32),
        Some((k, "f16")) => (k, DType::F16),
        Some((k, _)) => (k, DType::BF16),
        None => match name {
            "f32" => ("iid", DType::F32),
            "f16" => ("iid", DType::F16),
            _ => ("iid", DType::BF16),
        },
    };
    let n = bytes / dtype.size();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut values: Vec<f32> = (0..n).map(|_| rng.gauss() * 0.02).collect();
    let quantize = |values: &mut [f32], levels: f32| {
        let s = values.iter().fold(0f32, |m, v| m.max(v.abs())) / levels;
        values.iter_mut().for_each(|v| *v = (*v / s).round() * s);
    };
    let mut base = None;
    match kind {
        "sparse" => values.iter_mut().for_each(|v| {
            if rng.unit() < 0.5 {
                *v = 0.0;
            }
        }),
        "int8" => quantize(&mut values, 127.0),
        "int4" => quantize(&mut values, 7.0),
        "delta" => {
            base = Some(encode(&values, dtype));
            values.iter_mut().for_each(|v| {
                if rng.unit() < 0.05 {
                    *v += rng.gauss() * 0.002;
                }
            });
        }
        _ => {}
    }
    (encode(&values, dtype), dtype, base)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("bf16", String::as_str);
    let mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let threads: Option<usize> = args.get(4).and_then(|s| s.parse().ok());
    let effort = match args.get(5).map(String::as_str) {
        Some("fast") => Effort::Fast,
        Some("max") => Effort::Max,
        _ => Effort::Default,
    };
    let chunk_size = args
        .get(6)
        .and_then(|s| s.parse::<usize>().ok())
        .map_or(CompressOptions::with_effort(effort).chunk_size, |k| k << 10);
    let only = std::env::var("ONLY").unwrap_or_default();
    let (data, dtype, base) = workload(name, mb << 20);
    if let Ok(path) = std::env::var("DUMP") {
        // The same bytes for a peer codec (`benchmark/codec_peers.py --file`).
        std::fs::write(&path, &data).unwrap();
        if let Some(b) = &base {
            std::fs::write(format!("{path}.ref"), b).unwrap();
        }
    }
    let copts = CompressOptions {
        threads,
        chunk_size,
        ..CompressOptions::with_effort(effort)
    };
    let dopts = DecompressOptions {
        threads,
        ..Default::default()
    };
    let compress = || match &base {
        Some(b) => zt_codec::compress_delta(&data, b, Some(dtype), &copts).unwrap(),
        None => zt_codec::compress(&data, Some(dtype), &copts).unwrap(),
    };
    let decompress = |frame: &[u8]| match &base {
        Some(b) => zt_codec::decompress_delta_with(frame, b, &dopts).unwrap(),
        None => zt_codec::decompress_with(frame, &dopts).unwrap(),
    };
    let frame = compress();
    assert!(decompress(&frame) == data, "round trip differs");
    let (mut best_c, mut best_d) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        if only != "decompress" {
            let t = Instant::now();
            let f = compress();
            best_c = best_c.min(t.elapsed().as_secs_f64());
            assert_eq!(f.len(), frame.len());
        }
        if only != "compress" {
            let t = Instant::now();
            let back = decompress(&frame);
            best_d = best_d.min(t.elapsed().as_secs_f64());
            drop(back);
        }
    }
    let mbps = |secs: f64| data.len() as f64 / 1e6 / secs;
    println!(
        "{name} {mb} MiB {effort:?} chunk {} KiB: ratio {:.5}, compress {:.0} MB/s, decompress {:.0} MB/s",
        chunk_size >> 10,
        data.len() as f64 / frame.len() as f64,
        mbps(best_c),
        mbps(best_d),
    );
}
