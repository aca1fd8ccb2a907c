//! Throughput of the hand-written rANS against `constriction` on a bf16 exponent stream, and of
//! the Huffman coder beside rANS on exponents, fp16 high bytes and INT8 palette indices.
//!
//! `cargo run --release -p zt-codec --example rans_speed [MiB]`

use std::time::Instant;

use constriction::stream::Decode;
use constriction::stream::model::SmallContiguousCategoricalEntropyModel;
use constriction::stream::stack::SmallAnsCoder;
use zt_codec::{huffman, rans};

/// Exponent bytes of bf16 Gaussian(0, 0.02) samples (xorshift + Box-Muller).
fn exponents(n: usize) -> Vec<u8> {
    gaussians(n)
        .map(|g| ((g as f32).to_bits() >> 23) as u8)
        .collect()
}

/// High bytes (sign, 5 exponent bits, 2 mantissa bits) of fp16 Gaussian(0, 0.02) samples.
fn f16_high_bytes(n: usize) -> Vec<u8> {
    gaussians(n)
        .map(|g| (half::f16::from_f64(g).to_bits() >> 8) as u8)
        .collect()
}

/// INT8 indices of Gaussian(0, 0.02) samples quantized per tensor (scale max/127), as a
/// palette of the dequantized values sees them (~6.9 bits a symbol).
fn int8_indices(n: usize) -> Vec<u8> {
    let g: Vec<f64> = gaussians(n).collect();
    let scale = g.iter().fold(0f64, |m, v| m.max(v.abs())) / 127.0;
    g.iter()
        .map(|v| ((v / scale).round() + 127.0) as u8)
        .collect()
}

/// Gaussian(0, 0.02) samples (xorshift + Box-Muller).
fn gaussians(n: usize) -> impl Iterator<Item = f64> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n).map(move |_| {
        let (u, v) = (next().max(1e-300), next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos() * 0.02
    })
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("runs > 0"))
}

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map_or(16, |a| a.parse().expect("MiB"));
    let data = exponents(mib << 20);
    let n = data.len() as f64 / 1e6;
    let hist = rans::histogram(&data);
    let bound = rans::entropy_bits(&hist) / 8.0;

    let (te, enc) = best_of(5, || {
        let mut out = Vec::new();
        rans::encode_o0(&data, &hist, &mut out);
        out
    });
    let mut back = vec![0u8; data.len()];
    if std::env::var_os("DECODE_ONLY").is_some() {
        // For `perf stat`: cycles per symbol without the rest of the program.
        for _ in 0..std::env::var("DECODE_ONLY")
            .unwrap()
            .parse::<usize>()
            .unwrap()
        {
            rans::decode_o0(&enc, &mut back).expect("decodes");
        }
        return;
    }
    let (td, ()) = best_of(5, || rans::decode_o0(&enc, &mut back).expect("decodes"));
    assert_eq!(back, data);
    println!(
        "zt-codec rANS o0 x{}: {:.4} of entropy, encode {:.0} MB/s, decode {:.0} MB/s",
        rans::LANES_O0,
        enc.len() as f64 / bound,
        n / te,
        n / td
    );
    let (te, enc1) = best_of(3, || {
        let mut out = Vec::new();
        rans::encode_o1(&data, &mut out);
        out
    });
    let (td, ()) = best_of(3, || rans::decode_o1(&enc1, &mut back).expect("decodes"));
    assert_eq!(back, data);
    println!(
        "zt-codec rANS o1 x{}: {:.4} of entropy, encode {:.0} MB/s, decode {:.0} MB/s",
        rans::LANES_O1,
        enc1.len() as f64 / bound,
        n / te,
        n / td
    );

    // Huffman on the same exponents, and on fp16 high bytes (~5.5 bits a symbol), where a
    // table lookup yields fewer symbols.
    let high = f16_high_bytes(mib << 20);
    let high7: Vec<u8> = high.iter().map(|&b| b & 0x7f).collect();
    let int8 = int8_indices(mib << 20);
    for (name, d) in [
        ("exponents", &data),
        ("fp16 high bytes", &high),
        ("fp16 high bytes less the sign", &high7),
        ("INT8 indices", &int8),
    ] {
        let (th, h) = best_of(5, || rans::histogram(d));
        println!(
            "zt-codec histogram of {name}: {:.0} MB/s",
            d.len() as f64 / 1e6 / th
        );
        let lens = huffman::code_lengths(&h).expect("two symbols");
        let (te, enc) = best_of(3, || {
            let mut out = Vec::new();
            huffman::encode(d, &lens, &mut out);
            out
        });
        let mut back = vec![0u8; d.len()];
        let (td, ()) = best_of(5, || huffman::decode(&enc, &mut back).expect("decodes"));
        assert_eq!(&back, d);
        let mut o0 = Vec::new();
        rans::encode_o0(d, &h, &mut o0);
        let (tr, ()) = best_of(5, || rans::decode_o0(&o0, &mut back).expect("decodes"));
        let m = d.len() as f64 / 1e6;
        println!(
            "zt-codec Huffman on {name} ({:.2} bits/symbol): {:.4} of entropy, encode {:.0} MB/s, \
             decode {:.0} MB/s (rANS o0 decode {:.0} MB/s)",
            rans::entropy_bits(&h) / d.len() as f64,
            enc.len() as f64 / (rans::entropy_bits(&h) / 8.0),
            m / te,
            m / td,
            m / tr
        );
    }

    // constriction with the same 12-bit model (present symbols mapped to 0..k).
    let freq = rans::normalize(&hist);
    let present: Vec<usize> = (0..256).filter(|&s| freq[s] > 0).collect();
    let mut index = [0usize; 256];
    for (i, &s) in present.iter().enumerate() {
        index[s] = i;
    }
    let probs: Vec<u16> = present.iter().map(|&s| freq[s] as u16).collect();
    let model =
        SmallContiguousCategoricalEntropyModel::<Vec<u16>>::from_nonzero_fixed_point_probabilities(
            &probs, false,
        )
        .expect("valid model");
    let syms: Vec<usize> = data.iter().map(|&b| index[usize::from(b)]).collect();
    let (te, coder) = best_of(3, || {
        let mut c = SmallAnsCoder::new();
        c.encode_iid_symbols_reverse(&syms, &model)
            .expect("encodes");
        c
    });
    let words = coder.num_words();
    let (td, decoded) = best_of(3, || {
        let mut c = coder.clone();
        c.decode_iid_symbols(syms.len(), &model)
            .collect::<Result<Vec<usize>, _>>()
            .expect("decodes")
    });
    assert_eq!(decoded, syms);
    println!(
        "constriction SmallAnsCoder: {:.4} of entropy, encode {:.0} MB/s, decode {:.0} MB/s",
        (2 * words) as f64 / bound,
        n / te,
        n / td
    );
}
