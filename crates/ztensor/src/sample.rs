//! A Llama-shaped sample model, generated in memory from a deterministic PRNG, for demos,
//! benchmarks and tests that need realistic weights without downloading any.
//!
//! The shapes are those of Llama 3.2 1B (hidden 2048, 8 KV heads of 64 = 512, MLP 8192,
//! vocabulary 128256, 16 layers), with the number of layers and the vocabulary scaled down so
//! the whole model comes to about a requested size. Weights are bf16 values approximating
//! N(0, 0.02); the RMSNorm weights are N(1, 0.02), as in a trained model. The bytes are the
//! same as those of the benchmark model in `xtask/src/model.rs` for the same configuration and seed.

use std::ops::Range;
use std::path::Path;

use crate::{ComponentOptions, DType, Error, Result, TensorReader, Writer};

/// Model width.
pub const HIDDEN: u64 = 2048;
/// Width of the key and value projections (8 KV heads x 64).
pub const KV_DIM: u64 = 512;
/// MLP width.
pub const INTERMEDIATE: u64 = 8192;
/// Vocabulary of the full model.
pub const VOCAB: u64 = 128_256;
/// Layers of the full model.
pub const LAYERS: u64 = 16;
/// The seed `zt demo` uses.
pub const DEMO_SEED: u64 = 0x5A7E_2025;

const BF16_SIZE: u64 = 2;
/// Standard deviation of the weights.
const WEIGHT_STD: f32 = 0.02;
/// The vocabulary is scaled in steps of this many rows.
const VOCAB_STEP: u64 = 64;
/// Generation works in blocks of this many bytes, each with its own PRNG stream, so the
/// output does not depend on how many threads produce it.
const BLOCK_BYTES: usize = 4 << 20;

/// How many layers and vocabulary rows the sample has; every other dimension is the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleConfig {
    pub layers: u64,
    pub vocab: u64,
}

impl SampleConfig {
    /// The unscaled Llama 3.2 1B shape (about 2.8 GiB in bf16, with an untied `lm_head`).
    pub fn full() -> SampleConfig {
        SampleConfig {
            layers: LAYERS,
            vocab: VOCAB,
        }
    }

    /// Scales layers (in proportion) and then the vocabulary (to fill what is left) so the model
    /// comes to about `target` bytes. At least one layer and 64 vocabulary rows are kept, so
    /// very small targets give a larger model (about 122 MB).
    pub fn for_target_bytes(target: u64) -> SampleConfig {
        let full = SampleConfig::full();
        if target >= full.total_bytes() {
            return full;
        }
        let scale = target as f64 / full.total_bytes() as f64;
        let layers = ((LAYERS as f64 * scale).round() as u64).clamp(1, LAYERS);
        let fixed = layers * layer_elements() * BF16_SIZE + HIDDEN * BF16_SIZE;
        let per_row = 2 * HIDDEN * BF16_SIZE; // embed_tokens + lm_head
        let rows = target.saturating_sub(fixed) as f64 / per_row as f64;
        let vocab =
            ((rows / VOCAB_STEP as f64).round() as u64 * VOCAB_STEP).clamp(VOCAB_STEP, VOCAB);
        SampleConfig { layers, vocab }
    }

    /// Names and shapes in checkpoint order.
    pub fn tensors(&self) -> Vec<(String, Vec<u64>)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_owned(),
            vec![self.vocab, HIDDEN],
        )];
        for i in 0..self.layers {
            let p = format!("model.layers.{i}");
            out.extend([
                (format!("{p}.self_attn.q_proj.weight"), vec![HIDDEN, HIDDEN]),
                (format!("{p}.self_attn.k_proj.weight"), vec![KV_DIM, HIDDEN]),
                (format!("{p}.self_attn.v_proj.weight"), vec![KV_DIM, HIDDEN]),
                (format!("{p}.self_attn.o_proj.weight"), vec![HIDDEN, HIDDEN]),
                (
                    format!("{p}.mlp.gate_proj.weight"),
                    vec![INTERMEDIATE, HIDDEN],
                ),
                (
                    format!("{p}.mlp.up_proj.weight"),
                    vec![INTERMEDIATE, HIDDEN],
                ),
                (
                    format!("{p}.mlp.down_proj.weight"),
                    vec![HIDDEN, INTERMEDIATE],
                ),
                (format!("{p}.input_layernorm.weight"), vec![HIDDEN]),
                (format!("{p}.post_attention_layernorm.weight"), vec![HIDDEN]),
            ]);
        }
        out.push(("model.norm.weight".to_owned(), vec![HIDDEN]));
        out.push(("lm_head.weight".to_owned(), vec![self.vocab, HIDDEN]));
        out
    }

    /// Bytes of all tensors together.
    pub fn total_bytes(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(_, shape)| shape.iter().product::<u64>() * BF16_SIZE)
            .sum()
    }
}

/// Elements of one decoder layer.
fn layer_elements() -> u64 {
    2 * HIDDEN * HIDDEN + 2 * KV_DIM * HIDDEN + 3 * INTERMEDIATE * HIDDEN + 2 * HIDDEN
}

/// One tensor of the sample: its bf16 bytes are `data[range]` of the [`SampleModel`].
#[derive(Debug, Clone)]
pub struct SampleTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub range: Range<usize>,
}

/// The sample model: every tensor's little-endian bf16 bytes, back to back in one buffer.
pub struct SampleModel {
    pub config: SampleConfig,
    pub data: Vec<u8>,
    pub tensors: Vec<SampleTensor>,
}

impl std::fmt::Debug for SampleModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleModel")
            .field("config", &self.config)
            .field("tensors", &self.tensors.len())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl SampleModel {
    /// Generates the model; the same `config` and `seed` always give the same bytes.
    pub fn generate(config: SampleConfig, seed: u64) -> SampleModel {
        let mut tensors = Vec::new();
        let mut offset = 0usize;
        for (name, shape) in config.tensors() {
            let len = (shape.iter().product::<u64>() * BF16_SIZE) as usize;
            tensors.push(SampleTensor {
                name,
                shape,
                range: offset..offset + len,
            });
            offset += len;
        }
        let mut data = vec![0u8; offset];

        // Cut every tensor into blocks, each with a PRNG stream of its own.
        let mut jobs = Vec::new();
        let mut rest: &mut [u8] = &mut data;
        for (index, tensor) in tensors.iter().enumerate() {
            let (bytes, tail) = rest.split_at_mut(tensor.range.len());
            rest = tail;
            let mean = if tensor.shape.len() == 1 { 1.0 } else { 0.0 };
            for (block, chunk) in bytes.chunks_mut(BLOCK_BYTES).enumerate() {
                let stream = seed ^ ((index as u64) << 32 | block as u64).wrapping_mul(GOLDEN);
                jobs.push((chunk, mean, stream));
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut per_thread: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, job) in jobs.into_iter().enumerate() {
            per_thread[i % threads].push(job);
        }
        std::thread::scope(|scope| {
            for batch in per_thread {
                scope.spawn(move || {
                    for (chunk, mean, stream) in batch {
                        fill_bf16_normal(chunk, mean, WEIGHT_STD, stream);
                    }
                });
            }
        });
        SampleModel {
            config,
            data,
            tensors,
        }
    }

    /// The bytes of one tensor.
    pub fn bytes(&self, tensor: &SampleTensor) -> &[u8] {
        &self.data[tensor.range.clone()]
    }

    /// Bytes of all tensors together.
    pub fn total_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// Writes every tensor to a new `.zt` file at `path` with `Writer::create`, `add_dense` and
    /// `finish` (which fsyncs). Returns the size of the file.
    pub fn write_zt(&self, path: impl AsRef<Path>, options: ComponentOptions) -> Result<u64> {
        let mut writer = Writer::create(path)?;
        for t in &self.tensors {
            writer.add_dense(
                &t.name,
                t.shape.as_slice(),
                DType::BF16,
                self.bytes(t),
                options,
            )?;
        }
        writer.finish()
    }

    /// Checks that `reader` holds exactly this model: the same names, shapes and dtype, and
    /// byte-identical data. A difference is reported as a malformed `sample` naming the file,
    /// the tensor and the first differing byte.
    pub fn check_reader(&self, reader: &dyn TensorReader) -> Result<()> {
        let mismatch = |reason: String| Error::malformed("sample", reason).in_file(reader.path());
        if reader.len() != self.tensors.len() {
            return Err(mismatch(format!(
                "{} tensors, expected {}",
                reader.len(),
                self.tensors.len()
            )));
        }
        for t in &self.tensors {
            let info = reader.info(&t.name)?;
            if info.shape.dims() != t.shape.as_slice() {
                return Err(mismatch(format!(
                    "{} has shape {}, expected {:?}",
                    t.name, info.shape, t.shape
                )));
            }
            let found = info.components.get("data").map(|c| c.dtype);
            if found != Some(DType::BF16) {
                return Err(mismatch(format!(
                    "{} has data dtype {found:?}, expected bf16",
                    t.name
                )));
            }
            let bytes = reader
                .dense(&t.name)
                .map_err(|e| e.in_file(reader.path()))?;
            let want = self.bytes(t);
            if *bytes != *want {
                return Err(mismatch(
                    match bytes.iter().zip(want).position(|(a, b)| a != b) {
                        Some(at) => format!("{} differs from the sample at byte {at}", t.name),
                        None => format!(
                            "{} is {} bytes, expected {}",
                            t.name,
                            bytes.len(),
                            want.len()
                        ),
                    },
                ));
            }
        }
        Ok(())
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64: small, fast, and good enough for test data.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with little-endian bf16 values approximating N(`mean`, `std`): each value is the
/// sum of four 16-bit uniforms from one PRNG word (Irwin-Hall, within 3.5 sigma), rescaled.
fn fill_bf16_normal(out: &mut [u8], mean: f32, std: f32, seed: u64) {
    // Sum of four uniforms on 0..=65535: mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12.
    const SUM_MEAN: f32 = 131_070.0;
    let sum_std = (4.0 * (65_536.0f64 * 65_536.0 - 1.0) / 12.0).sqrt() as f32;
    let scale = std / sum_std;
    let mut state = seed;
    for pair in out.chunks_exact_mut(2) {
        let r = splitmix64(&mut state);
        let sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
        let x = mean + (sum as f32 - SUM_MEAN) * scale;
        pair.copy_from_slice(&bf16_from_f32(x).to_le_bytes());
    }
}

/// The bf16 nearest to `x`, ties to even, computed exactly as `half::bf16::from_f32` does (so the
/// bytes match those of the `half` crate, which this crate does not depend on); NaN stays NaN.
fn bf16_from_f32(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7FFF_FFFF > 0x7F80_0000 {
        return ((bits >> 16) | 0x0040) as u16;
    }
    let round_bit = 0x0000_8000;
    if bits & round_bit != 0 && bits & (3 * round_bit - 1) != 0 {
        (bits >> 16) as u16 + 1
    } else {
        (bits >> 16) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_to_f32(b: [u8; 2]) -> f32 {
        f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
    }

    #[test]
    fn scaled_configs_come_close_to_the_target() {
        for mib in [256u64, 1024, 2048] {
            let target = mib << 20;
            let config = SampleConfig::for_target_bytes(target);
            let total = config.total_bytes() as f64;
            assert!(
                (total / target as f64 - 1.0).abs() < 0.01,
                "{mib} MiB: {config:?}"
            );
        }
        assert_eq!(
            SampleConfig::for_target_bytes(u64::MAX),
            SampleConfig::full()
        );
        assert_eq!(SampleConfig::full().tensors().len(), 16 * 9 + 3);
    }

    #[test]
    fn bf16_rounding_is_to_nearest_even() {
        assert_eq!(bf16_from_f32(1.0), 0x3F80);
        assert_eq!(bf16_from_f32(-2.0), 0xC000);
        // 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7: it ties to 1.
        assert_eq!(bf16_from_f32(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(bf16_from_f32(-(1.0 + 1.0 / 256.0)), 0xBF80);
        // Just above the midpoint rounds up.
        assert_eq!(bf16_from_f32(1.0 + 1.0 / 256.0 + 1e-6), 0x3F81);
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: it ties up.
        assert_eq!(bf16_from_f32(1.0 + 3.0 / 256.0), 0x3F82);
        assert!(f32::from_bits(u32::from(bf16_from_f32(f32::NAN)) << 16).is_nan());
    }

    #[test]
    fn weights_are_deterministic_and_roughly_normal() {
        // One 1 MiB block (the full model is too large for an unoptimised test build).
        let mut a = vec![0u8; 1 << 20];
        let mut b = vec![0u8; 1 << 20];
        fill_bf16_normal(&mut a, 0.0, WEIGHT_STD, 7);
        fill_bf16_normal(&mut b, 0.0, WEIGHT_STD, 7);
        assert_eq!(a, b);
        let values: Vec<f64> = a
            .chunks_exact(2)
            .map(|p| f64::from(bf16_to_f32([p[0], p[1]])))
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 1e-4, "mean {mean}");
        assert!((std - 0.02).abs() < 5e-4, "std {std}");

        let names = SampleConfig {
            layers: 1,
            vocab: 64,
        }
        .tensors();
        assert_eq!(names[1].0, "model.layers.0.self_attn.q_proj.weight");
        assert_eq!(names.len(), 12);
    }
}
