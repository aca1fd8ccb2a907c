//! Profiling driver: compresses and decompresses iid bf16 weights in a loop.
//! `cargo run --release -p zt-codec --example profile -- [MB] [rounds] [threads]`

use std::time::Instant;

use zt_codec::{CompressOptions, DecompressOptions};
use zt_core::DType;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let threads: Option<usize> = args.get(3).and_then(|s| s.parse().ok());
    let dtype = match args.get(4).map(String::as_str) {
        Some("f32") => DType::F32,
        Some("f16") => DType::F16,
        _ => DType::BF16,
    };
    let n = mb << 20;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut gauss = || {
        // Sum of 4 uniforms: close enough to a Gaussian for exponent statistics.
        let mut s = 0.0f64;
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s += (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        }
        s * 0.02 * 1.7
    };
    let data: Vec<u8> = match dtype {
        DType::F32 => (0..n / 4)
            .flat_map(|_| (gauss() as f32).to_le_bytes())
            .collect(),
        DType::F16 => (0..n / 2)
            .flat_map(|_| half_bits(gauss() as f32).to_le_bytes())
            .collect(),
        _ => (0..n / 2)
            .flat_map(|_| (((gauss() as f32).to_bits() >> 16) as u16).to_le_bytes())
            .collect(),
    };
    let copts = CompressOptions {
        threads,
        ..Default::default()
    };
    let dopts = DecompressOptions {
        threads,
        ..Default::default()
    };
    let frame = zt_codec::compress(&data, Some(dtype), &copts).unwrap();
    if std::env::var_os("ONLY_COMPRESS").is_some() {
        let t = Instant::now();
        for _ in 0..rounds {
            zt_codec::compress(&data, Some(dtype), &copts).unwrap();
        }
        let gb = (data.len() * rounds) as f64 / 1e9;
        println!("compress {:.2} GB/s", gb / t.elapsed().as_secs_f64());
        return;
    }
    let mut out = vec![0u8; data.len()];
    let (mut best_c, mut best_d, mut best_dn) = (f64::MAX, f64::MAX, f64::MAX);
    let mut best_plain = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        let f = zt_codec::compress(&data, Some(dtype), &copts).unwrap();
        best_c = best_c.min(t.elapsed().as_secs_f64());
        assert_eq!(f.len(), frame.len());
        let t = Instant::now();
        zt_codec::decompress_into_with(&frame, &mut out, &dopts).unwrap();
        best_d = best_d.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let fresh = zt_codec::decompress_with(&frame, &dopts).unwrap();
        best_dn = best_dn.min(t.elapsed().as_secs_f64());
        assert!(fresh == data);
        drop(fresh);
        // A fresh buffer without the huge-page advice, for comparison in the same run.
        let t = Instant::now();
        let mut plain = vec![0u8; data.len()];
        zt_codec::decompress_into_with(&frame, &mut plain, &dopts).unwrap();
        best_plain = best_plain.min(t.elapsed().as_secs_f64());
    }
    let gb = data.len() as f64 / 1e9;
    println!(
        "{dtype} {mb} MiB ratio {:.4}: compress {:.2} GB/s, decompress into {:.2} GB/s, decompress new {:.2} GB/s (fresh buffer without THP advice {:.2} GB/s)",
        data.len() as f64 / frame.len() as f64,
        gb / best_c,
        gb / best_d,
        gb / best_dn,
        gb / best_plain
    );
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
