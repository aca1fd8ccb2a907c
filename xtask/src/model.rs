//! A Llama-shaped sample model, generated in memory from a deterministic PRNG.
//!
//! The shapes are those of Llama 3.2 1B (hidden 2048, 8 KV heads of 64 = 512, MLP 8192,
//! vocabulary 128256, 16 layers), with the number of layers and the vocabulary scaled down so
//! the whole model comes to about a requested size. Weights are bf16 values approximating
//! N(0, 0.02); the RMSNorm weights are N(1, 0.02), as in a trained model.

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use ztensor::{ComponentOptions, DType, TensorReader, Writer};

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

const BF16_SIZE: u64 = 2;
/// Standard deviation of the weights.
const WEIGHT_STD: f32 = 0.02;
/// The vocabulary is scaled in steps of this many rows.
const VOCAB_STEP: u64 = 64;
/// Generation works in blocks of this many bytes, each with its own PRNG stream, so the
/// output does not depend on how many threads produce it.
const BLOCK_BYTES: usize = 4 << 20;

/// How many layers and vocabulary rows the sample has; every other dimension is the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    pub layers: u64,
    pub vocab: u64,
}

impl Config {
    /// The unscaled Llama 3.2 1B shape (about 2.8 GiB in bf16, with an untied `lm_head`).
    pub fn full() -> Config {
        Config {
            layers: LAYERS,
            vocab: VOCAB,
        }
    }

    /// Scales layers (in proportion) and then the vocabulary (to fill what is left) so the model
    /// comes to about `target` bytes. At least one layer and 64 vocabulary rows are kept, so
    /// very small targets give a larger model (about 122 MB).
    pub fn for_target_bytes(target: u64) -> Config {
        let full = Config::full();
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
        Config { layers, vocab }
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

/// One tensor of the sample: its bf16 bytes are `data[range]` of the [`Model`].
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub range: Range<usize>,
}

/// The sample model: every tensor's little-endian bytes, back to back in one buffer. Every
/// tensor has the same element type.
pub struct Model {
    pub data: Vec<u8>,
    pub tensors: Vec<Tensor>,
    pub dtype: DType,
}

impl Model {
    /// Generates the Llama-shaped bf16 model; the same `config` and `seed` always give the same
    /// bytes.
    pub fn generate(config: Config, seed: u64) -> Model {
        Model::fill(
            config.tensors(),
            DType::BF16,
            seed,
            |tensor, chunk, stream| {
                let mean = if tensor.shape.len() == 1 { 1.0 } else { 0.0 };
                fill_bf16_normal(chunk, mean, WEIGHT_STD, stream);
            },
        )
    }

    /// A model of the given names and shapes whose bytes `fill(tensor, block, stream)` writes,
    /// block by block (4 MiB, element-aligned), each block with a PRNG stream seed of its own.
    /// Blocks are filled on every CPU; the bytes depend only on `seed` and the shapes.
    pub fn fill(
        shapes: Vec<(String, Vec<u64>)>,
        dtype: DType,
        seed: u64,
        fill: impl Fn(&Tensor, &mut [u8], u64) + Sync,
    ) -> Model {
        let mut tensors = Vec::new();
        let mut offset = 0usize;
        for (name, shape) in shapes {
            let len = (shape.iter().product::<u64>() * dtype.size() as u64) as usize;
            tensors.push(Tensor {
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
            for (block, chunk) in bytes.chunks_mut(BLOCK_BYTES).enumerate() {
                let stream = seed ^ ((index as u64) << 32 | block as u64).wrapping_mul(GOLDEN);
                jobs.push((tensor, chunk, stream));
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut per_thread: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, job) in jobs.into_iter().enumerate() {
            per_thread[i % threads].push(job);
        }
        let fill = &fill;
        std::thread::scope(|scope| {
            for batch in per_thread {
                scope.spawn(move || {
                    for (tensor, chunk, stream) in batch {
                        fill(tensor, chunk, stream);
                    }
                });
            }
        });
        Model {
            data,
            tensors,
            dtype,
        }
    }

    /// The bytes of one tensor.
    pub fn bytes(&self, tensor: &Tensor) -> &[u8] {
        &self.data[tensor.range.clone()]
    }

    /// Bytes of all tensors together.
    pub fn total_bytes(&self) -> u64 {
        self.data.len() as u64
    }

    /// Writes every tensor to a new `.zt` file at `path` with `Writer::create`, `add_dense` and
    /// `finish` (which fsyncs). Returns the size of the file.
    pub fn write_zt(&self, path: &Path, options: ComponentOptions) -> Result<u64> {
        let mut writer =
            Writer::create(path).with_context(|| format!("creating {}", path.display()))?;
        for t in &self.tensors {
            writer
                .add_dense(
                    &t.name,
                    t.shape.as_slice(),
                    self.dtype,
                    self.bytes(t),
                    options,
                )
                .with_context(|| format!("writing {} to {}", t.name, path.display()))?;
        }
        writer
            .finish()
            .with_context(|| format!("finishing {}", path.display()))
    }

    /// Checks that `reader` holds exactly this model: the same names, shapes and dtype, and
    /// byte-identical data.
    pub fn check_reader(&self, reader: &dyn TensorReader) -> Result<()> {
        self.check_reader_as(reader, self.dtype, &self.data)
    }

    /// [`check_reader`](Self::check_reader) for the model stored as `dtype`, whose tensor bytes
    /// are `expected` at the model's ranges (a format that holds the model converted, e.g. f16).
    pub fn check_reader_as(
        &self,
        reader: &dyn TensorReader,
        dtype: DType,
        expected: &[u8],
    ) -> Result<()> {
        let path = reader.path().display();
        ensure!(
            reader.len() == self.tensors.len(),
            "{path}: {} tensors, expected {}",
            reader.len(),
            self.tensors.len()
        );
        for t in &self.tensors {
            let info = reader
                .info(&t.name)
                .with_context(|| format!("{path}: looking up {}", t.name))?;
            ensure!(
                info.shape.dims() == t.shape.as_slice(),
                "{path}: {} has shape {:?}, expected {:?}",
                t.name,
                info.shape.dims(),
                t.shape
            );
            let found = info.components.get("data").map(|c| c.dtype);
            ensure!(
                found == Some(dtype),
                "{path}: {} has data dtype {found:?}, expected {dtype:?}",
                t.name
            );
            let bytes = reader
                .dense(&t.name)
                .with_context(|| format!("{path}: reading {}", t.name))?;
            let want = &expected[t.range.clone()];
            if *bytes != *want {
                match bytes.iter().zip(want).position(|(a, b)| a != b) {
                    Some(at) => bail!("{path}: {} differs from the model at byte {at}", t.name),
                    None => bail!(
                        "{path}: {} is {} bytes, expected {}",
                        t.name,
                        bytes.len(),
                        want.len()
                    ),
                }
            }
        }
        Ok(())
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64: small, fast, and good enough for test data.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with little-endian bf16 values approximating N(`mean`, `std`).
fn fill_bf16_normal(out: &mut [u8], mean: f32, std: f32, seed: u64) {
    let mut normal = Normal::new(mean, std, seed);
    for pair in out.chunks_exact_mut(2) {
        pair.copy_from_slice(&half::bf16::from_f32(normal.sample()).to_le_bytes());
    }
}

/// Approximately normal f32 values: each is the sum of four 16-bit uniforms from one PRNG word
/// (Irwin-Hall, within 3.5 sigma), rescaled.
pub struct Normal {
    state: u64,
    mean: f32,
    scale: f32,
}

impl Normal {
    pub fn new(mean: f32, std: f32, seed: u64) -> Normal {
        // Sum of four uniforms on 0..=65535: variance 4 * (65536^2 - 1) / 12.
        let sum_std = (4.0 * (65_536.0f64 * 65_536.0 - 1.0) / 12.0).sqrt() as f32;
        Normal {
            state: seed,
            mean,
            scale: std / sum_std,
        }
    }

    pub fn sample(&mut self) -> f32 {
        // The mean of the sum of four uniforms on 0..=65535.
        const SUM_MEAN: f32 = 131_070.0;
        let r = splitmix64(&mut self.state);
        let sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
        self.mean + (sum as f32 - SUM_MEAN) * self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_configs_come_close_to_the_target() {
        for mib in [256u64, 1024, 2048] {
            let target = mib << 20;
            let config = Config::for_target_bytes(target);
            let total = config.total_bytes() as f64;
            assert!(
                (total / target as f64 - 1.0).abs() < 0.01,
                "{mib} MiB: {config:?}"
            );
        }
        assert_eq!(Config::for_target_bytes(u64::MAX), Config::full());
        assert_eq!(Config::full().tensors().len(), 16 * 9 + 3);
    }

    #[test]
    fn generation_is_deterministic_and_roughly_normal() {
        let config = Config {
            layers: 1,
            vocab: 64,
        };
        let a = Model::generate(config, 7);
        let b = Model::generate(config, 7);
        assert_eq!(a.data, b.data);
        let q = &a.tensors[1];
        assert_eq!(q.name, "model.layers.0.self_attn.q_proj.weight");
        let values: Vec<f64> = a
            .bytes(q)
            .chunks_exact(2)
            .map(|p| f64::from(half::bf16::from_le_bytes([p[0], p[1]]).to_f32()))
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(mean.abs() < 1e-4, "mean {mean}");
        assert!((std - 0.02).abs() < 5e-4, "std {std}");
    }
}
