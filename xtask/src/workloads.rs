//! The generated workloads of `cargo xtask bench` other than the Llama-shaped model
//! ([`crate::model`]): the format comparison's Large / Mixed / Small float32 models and the
//! compression benchmark's Dense / Quantized / Pruned / Ternary models, each about `bytes` long.
//!
//! The shapes follow upstream zTensor's benchmark: Large is 50 MB 1-D tensors; Mixed is
//! 5000 x 5000 matrices while more than 100 MB remains, then 1000 x 2500 while more than 10 MB
//! remains, then a 1-D tail; Small is 10 KiB 1-D tensors. Every tensor is a whole number of
//! 8-byte words, so the per-tensor byte sums of the readers add up to the sum of the model.

use ztensor::DType;

use crate::model::{Model, Normal, splitmix64};

/// Standard deviation of the generated float weights.
const WEIGHT_STD: f32 = 0.02;

/// The format comparison's tensor-size distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Large,
    Mixed,
    Small,
}

impl Layout {
    pub const ALL: [Layout; 3] = [Layout::Large, Layout::Mixed, Layout::Small];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Large => "large",
            Layout::Mixed => "mixed",
            Layout::Small => "small",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Layout::Large => "Large",
            Layout::Mixed => "Mixed",
            Layout::Small => "Small",
        }
    }

    /// Names and shapes of float32 tensors adding up to about `bytes` (rounded down to 8).
    pub fn shapes(self, bytes: u64) -> Vec<(String, Vec<u64>)> {
        let mut elements = Vec::new(); // shapes in f32 elements
        let mut left = bytes / 8 * 2; // f32 elements, an even count
        let mut take = |shape: Vec<u64>, left: &mut u64| {
            *left -= shape.iter().product::<u64>();
            elements.push(shape);
        };
        match self {
            Layout::Large => {
                const LARGE: u64 = 50_000_000 / 4;
                while left >= LARGE {
                    take(vec![LARGE], &mut left);
                }
            }
            Layout::Mixed => {
                while left * 4 > 100_000_000 {
                    take(vec![5000, 5000], &mut left);
                }
                while left * 4 > 10_000_000 {
                    take(vec![1000, 2500], &mut left);
                }
            }
            Layout::Small => {
                const SMALL: u64 = 10 * 1024 / 4;
                while left >= SMALL {
                    take(vec![SMALL], &mut left);
                }
            }
        }
        if left > 0 {
            take(vec![left], &mut left);
        }
        elements
            .into_iter()
            .enumerate()
            .map(|(i, shape)| (format!("tensor.{i:06}"), shape))
            .collect()
    }

    /// The float32 model: N(0, 0.02) weights.
    pub fn model(self, bytes: u64, seed: u64) -> Model {
        Model::fill(self.shapes(bytes), DType::F32, seed, |_, chunk, stream| {
            fill_f32(chunk, stream, |normal, _| normal.sample());
        })
    }
}

/// The compression benchmark's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dense,
    Quantized,
    Pruned,
    Ternary,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Dense, Kind::Quantized, Kind::Pruned, Kind::Ternary];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Dense => "dense-fp32",
            Kind::Quantized => "quantized-int8",
            Kind::Pruned => "pruned-80",
            Kind::Ternary => "ternary",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::Dense => "Dense fp32",
            Kind::Quantized => "Quantized int8",
            Kind::Pruned => "Pruned 80%",
            Kind::Ternary => "Ternary",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Kind::Dense => "random float32 weights, N(0, 0.02)",
            Kind::Quantized => "4-bit values (-8..7) in int8 storage",
            Kind::Pruned => "float32, 80% of the weights exactly zero",
            Kind::Ternary => "ternary weights (-1, 0, 1) in int8 storage",
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Kind::Dense | Kind::Pruned => DType::F32,
            Kind::Quantized | Kind::Ternary => DType::I8,
        }
    }

    /// About `bytes` of this data as 4096-column matrices of at most 4096 rows (a 1-D tail
    /// takes what is left).
    pub fn model(self, bytes: u64, seed: u64) -> Model {
        const COLS: u64 = 4096;
        let size = self.dtype().size() as u64;
        let mut left = bytes / 8 * 8 / size;
        let mut shapes = Vec::new();
        while left >= COLS {
            let rows = (left / COLS).min(4096);
            shapes.push(vec![rows, COLS]);
            left -= rows * COLS;
        }
        if left > 0 {
            shapes.push(vec![left]);
        }
        let shapes = shapes
            .into_iter()
            .enumerate()
            .map(|(i, shape)| (format!("layer.{i:03}.weight"), shape))
            .collect();
        Model::fill(
            shapes,
            self.dtype(),
            seed,
            move |_, chunk, stream| match self {
                Kind::Dense => fill_f32(chunk, stream, |normal, _| normal.sample()),
                // One PRNG word per weight decides whether it is pruned (80%), the normal sampler
                // gives the survivors.
                Kind::Pruned => fill_f32(chunk, stream, |normal, word| {
                    if word % 5 == 0 { normal.sample() } else { 0.0 }
                }),
                Kind::Quantized => fill_i8(chunk, stream, |word| (word % 16) as i8 - 8),
                Kind::Ternary => fill_i8(chunk, stream, |word| (word % 3) as i8 - 1),
            },
        )
    }
}

/// Fills `out` with little-endian f32 values from `value(normal sampler, PRNG word)`.
fn fill_f32(out: &mut [u8], stream: u64, value: impl Fn(&mut Normal, u64) -> f32) {
    let mut normal = Normal::new(0.0, WEIGHT_STD, stream);
    let mut state = !stream;
    for word in out.chunks_exact_mut(4) {
        let x = value(&mut normal, splitmix64(&mut state) >> 32);
        word.copy_from_slice(&x.to_le_bytes());
    }
}

/// Fills `out` with int8 values from `value(PRNG word)`.
fn fill_i8(out: &mut [u8], stream: u64, value: impl Fn(u64) -> i8) {
    let mut state = stream;
    for byte in out {
        *byte = value(splitmix64(&mut state) >> 32) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_fill_the_size_in_words() {
        for layout in Layout::ALL {
            for bytes in [1u64 << 20, 123_456_789, 512 << 20] {
                let shapes = layout.shapes(bytes);
                let total: u64 = shapes
                    .iter()
                    .map(|(_, s)| s.iter().product::<u64>() * 4)
                    .sum();
                assert_eq!(total, bytes / 8 * 8, "{layout:?} {bytes}");
                assert!(
                    shapes
                        .iter()
                        .all(|(_, s)| s.iter().product::<u64>() % 2 == 0)
                );
            }
        }
        let mixed = Layout::Mixed.shapes(512 << 20);
        assert_eq!(mixed[0].1, vec![5000, 5000]);
        assert!(mixed.iter().any(|(_, s)| *s == vec![1000, 2500]));
        assert_eq!(Layout::Small.shapes(1 << 20)[0].1, vec![2560]);
        assert_eq!(Layout::Large.shapes(512 << 20).len(), 11);
    }

    #[test]
    fn compression_data_has_its_shape() {
        let zeros = |m: &Model| m.data.chunks_exact(4).filter(|w| *w == [0; 4]).count();
        let pruned = Kind::Pruned.model(1 << 20, 1);
        let fraction = zeros(&pruned) as f64 / (pruned.data.len() / 4) as f64;
        assert!((fraction - 0.8).abs() < 0.01, "{fraction}");
        let ternary = Kind::Ternary.model(1 << 20, 1);
        assert!(ternary.data.iter().all(|&b| matches!(b as i8, -1..=1)));
        let quantized = Kind::Quantized.model(1 << 20, 1);
        assert!(quantized.data.iter().all(|&b| matches!(b as i8, -8..=7)));
        for kind in Kind::ALL {
            let m = kind.model(3 << 20, 2);
            assert_eq!(m.data.len(), 3 << 20);
            assert_eq!(m.dtype, kind.dtype());
        }
    }
}
