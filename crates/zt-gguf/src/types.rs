//! The ggml tensor types a GGUF file can name, with their block geometry.

use zt_core::DType;

/// One ggml tensor type: its id in the file, its name, and how its elements are packed.
///
/// Dense types have `elems_per_block == 1` and a `dense` storage dtype; every other type stores
/// blocks of `elems_per_block` elements in `block_bytes` bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    pub id: u32,
    /// Lowercase name, as in llama.cpp's `ggml_type_name` (`"q4_k"`, `"bf16"`).
    pub name: &'static str,
    pub elems_per_block: u64,
    pub block_bytes: u64,
    /// The storage dtype of a dense type; `None` for block-quantized types.
    pub dense: Option<DType>,
}

const fn dense(id: u32, name: &'static str, dtype: DType) -> GgmlType {
    GgmlType {
        id,
        name,
        elems_per_block: 1,
        block_bytes: dtype.size() as u64,
        dense: Some(dtype),
    }
}

const fn quant(id: u32, name: &'static str, elems_per_block: u64, block_bytes: u64) -> GgmlType {
    GgmlType {
        id,
        name,
        elems_per_block,
        block_bytes,
        dense: None,
    }
}

/// Elements per block of the k-quants and i-quants (`QK_K` in ggml).
const QK_K: u64 = 256;

/// Every type of `GGMLQuantizationType` / `GGML_QUANT_SIZES` in the `gguf` Python package
/// (gguf/constants.py), which mirrors ggml.h. Ids 4, 5 (the removed Q4_2/Q4_3) and 31..33, 36..38
/// (removed or never-stored types) are absent there and so are unknown here.
pub const GGML_TYPES: &[GgmlType] = &[
    dense(0, "f32", DType::F32),
    dense(1, "f16", DType::F16),
    quant(2, "q4_0", 32, 2 + 16),
    quant(3, "q4_1", 32, 2 + 2 + 16),
    quant(6, "q5_0", 32, 2 + 4 + 16),
    quant(7, "q5_1", 32, 2 + 2 + 4 + 16),
    quant(8, "q8_0", 32, 2 + 32),
    quant(9, "q8_1", 32, 4 + 4 + 32),
    quant(10, "q2_k", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
    quant(11, "q3_k", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
    quant(12, "q4_k", QK_K, 2 + 2 + QK_K / 2 + 12),
    quant(13, "q5_k", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
    quant(14, "q6_k", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
    quant(15, "q8_k", QK_K, 4 + QK_K + QK_K / 8),
    quant(16, "iq2_xxs", QK_K, 2 + QK_K / 4),
    quant(17, "iq2_xs", QK_K, 2 + QK_K / 4 + QK_K / 32),
    quant(18, "iq3_xxs", QK_K, 2 + QK_K / 4 + QK_K / 8),
    quant(19, "iq1_s", QK_K, 2 + QK_K / 8 + QK_K / 16),
    quant(20, "iq4_nl", 32, 2 + 16),
    quant(21, "iq3_s", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
    quant(22, "iq2_s", QK_K, 2 + QK_K / 4 + QK_K / 16),
    quant(23, "iq4_xs", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
    dense(24, "i8", DType::I8),
    dense(25, "i16", DType::I16),
    dense(26, "i32", DType::I32),
    dense(27, "i64", DType::I64),
    dense(28, "f64", DType::F64),
    quant(29, "iq1_m", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
    dense(30, "bf16", DType::BF16),
    quant(34, "tq1_0", QK_K, 2 + 4 * 13),
    quant(35, "tq2_0", QK_K, 2 + 64),
    quant(39, "mxfp4", 32, 1 + 16),
    quant(40, "nvfp4", 64, 4 + 32),
    quant(41, "q1_0", 128, 2 + 16),
];

impl GgmlType {
    /// The type with this id, or `None` for ids this reader does not know.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES.iter().copied().find(|t| t.id == id)
    }

    pub fn is_dense(&self) -> bool {
        self.dense.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_geometry_matches_ggml() {
        for (i, a) in GGML_TYPES.iter().enumerate() {
            assert!(
                GGML_TYPES[i + 1..]
                    .iter()
                    .all(|b| b.id != a.id && b.name != a.name)
            );
            assert!(a.elems_per_block > 0 && a.block_bytes > 0);
        }
        let q4_k = GgmlType::from_id(12).unwrap();
        assert_eq!(
            (q4_k.name, q4_k.elems_per_block, q4_k.block_bytes),
            ("q4_k", 256, 144)
        );
        assert_eq!(GgmlType::from_id(15).unwrap().block_bytes, 292);
        assert_eq!(GgmlType::from_id(30).unwrap().dense, Some(DType::BF16));
        assert_eq!(GgmlType::from_id(4), None);
    }
}
