//! Compress/decompress loop for profiling: `codec_speed [bf16|fp32] [MiB] [iters] [threads]`.

use std::time::Instant;

use zt_codec::{CompressOptions, DecompressOptions, compress, decompress_with};
use zt_core::DType;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dtype = match args.get(1).map_or("bf16", String::as_str) {
        "fp32" => DType::F32,
        _ => DType::BF16,
    };
    let mib: usize = args.get(2).map_or(32, |a| a.parse().expect("MiB"));
    let iters: usize = args.get(3).map_or(10, |a| a.parse().expect("iters"));
    let threads: usize = args.get(4).map_or(1, |a| a.parse().expect("threads"));
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let n = (mib << 20) / dtype.size();
    let data: Vec<u8> = (0..n)
        .flat_map(|_| {
            let (u, v) = (next().max(1e-300), next());
            let g = ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos() * 0.02) as f32;
            let b = g.to_bits().to_le_bytes();
            if dtype == DType::BF16 {
                b[2..].to_vec()
            } else {
                b.to_vec()
            }
        })
        .collect();
    let opts = CompressOptions {
        threads: Some(threads),
        ..Default::default()
    };
    let dopts = DecompressOptions {
        threads: Some(threads),
        ..Default::default()
    };
    let frame = compress(&data, Some(dtype), &opts).expect("compresses");
    let mode = std::env::var("MODE").unwrap_or_default();
    let (mut bc, mut bd) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..iters {
        if mode != "d" {
            let t = Instant::now();
            let f = compress(&data, Some(dtype), &opts).expect("compresses");
            bc = bc.min(t.elapsed().as_secs_f64());
            assert_eq!(f.len(), frame.len());
        }
        if mode != "c" {
            let t = Instant::now();
            let back = decompress_with(&frame, &dopts).expect("decodes");
            bd = bd.min(t.elapsed().as_secs_f64());
            assert_eq!(back.len(), data.len());
        }
    }
    let mb = data.len() as f64 / 1e6;
    println!(
        "{dtype} ratio {:.4}: compress {:.0} MB/s, decompress {:.0} MB/s ({threads} thread(s))",
        data.len() as f64 / frame.len() as f64,
        mb / bc,
        mb / bd
    );
}
