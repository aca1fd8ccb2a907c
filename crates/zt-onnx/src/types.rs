//! ONNX element types: how each maps onto zt-core's dtypes, how many bytes a tensor takes, and
//! how the typed protobuf fields turn into little-endian element bytes.

use zt_core::{DType, Error, LogicalType, Shape};

use crate::FORMAT;
use crate::proto::TensorProto;
use crate::proto::tensor_proto::DataType;

/// How the elements of a type are laid out in `raw_data` (and in what the reader returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Whole bytes per element (complex types count both halves).
    Bytes(u64),
    /// Sub-byte elements packed LSB first: two 4-bit, four 2-bit, or four 6-bit per 3 bytes.
    Bits(u64),
}

/// Which typed field holds the values when `raw_data` is absent, and how each entry converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypedField {
    /// `float_data` as f32 (FLOAT, and COMPLEX64 as real/imaginary pairs).
    Float,
    /// `double_data` as f64 (DOUBLE, COMPLEX128).
    Double,
    /// `int32_data`, each entry truncated to this many little-endian bytes: the 8- and 16-bit
    /// integers, BOOL, and the bit patterns of FLOAT16/BFLOAT16/FLOAT8 (as `to_array` does).
    Int32(usize),
    /// `int32_data` holding already-packed bytes of 2- and 4-bit types, one byte per entry.
    Int32Packed,
    /// `int32_data` with one 6-bit code per entry (low 6 bits), packed here.
    Int32Six,
    Int64,
    /// `uint64_data`, truncated to 4 (UINT32) or 8 (UINT64) bytes.
    UInt64(usize),
}

/// An ONNX data type zt-onnx can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxType {
    pub data_type: DataType,
    pub dtype: DType,
    pub logical_type: Option<LogicalType>,
    pub packing: Packing,
    typed: TypedField,
}

impl OnnxType {
    /// The type of a `TensorProto.data_type` value; STRING, UNDEFINED and unknown values are
    /// refused with a message that says why.
    pub fn from_code(code: i32) -> Result<OnnxType, Error> {
        use DataType as D;
        use LogicalType as L;
        use Packing::{Bits, Bytes};
        use TypedField as T;
        let data_type = DataType::try_from(code)
            .map_err(|_| Error::Unsupported(format!("unknown ONNX tensor data type {code}")))?;
        let other = |name: &str| Some(L::Other(name.to_owned()));
        let (dtype, logical_type, packing, typed) = match data_type {
            D::Float => (DType::F32, None, Bytes(4), T::Float),
            D::Uint8 => (DType::U8, None, Bytes(1), T::Int32(1)),
            D::Int8 => (DType::I8, None, Bytes(1), T::Int32(1)),
            D::Uint16 => (DType::U16, None, Bytes(2), T::Int32(2)),
            D::Int16 => (DType::I16, None, Bytes(2), T::Int32(2)),
            D::Int32 => (DType::I32, None, Bytes(4), T::Int32(4)),
            D::Int64 => (DType::I64, None, Bytes(8), T::Int64),
            D::Bool => (DType::Bool, None, Bytes(1), T::Int32(1)),
            D::Float16 => (DType::F16, None, Bytes(2), T::Int32(2)),
            D::Double => (DType::F64, None, Bytes(8), T::Double),
            D::Uint32 => (DType::U32, None, Bytes(4), T::UInt64(4)),
            D::Uint64 => (DType::U64, None, Bytes(8), T::UInt64(8)),
            D::Complex64 => (DType::F32, Some(L::Complex64), Bytes(8), T::Float),
            D::Complex128 => (DType::F64, Some(L::Complex128), Bytes(16), T::Double),
            D::Bfloat16 => (DType::BF16, None, Bytes(2), T::Int32(2)),
            D::Float8e4m3fn => (DType::U8, Some(L::F8E4M3Fn), Bytes(1), T::Int32(1)),
            D::Float8e4m3fnuz => (DType::U8, Some(L::F8E4M3Fnuz), Bytes(1), T::Int32(1)),
            D::Float8e5m2 => (DType::U8, Some(L::F8E5M2), Bytes(1), T::Int32(1)),
            D::Float8e5m2fnuz => (DType::U8, Some(L::F8E5M2Fnuz), Bytes(1), T::Int32(1)),
            D::Float8e8m0 => (DType::U8, Some(L::F8E8M0), Bytes(1), T::Int32(1)),
            D::Uint4 => (DType::U8, other("u4"), Bits(4), T::Int32Packed),
            D::Int4 => (DType::U8, other("i4"), Bits(4), T::Int32Packed),
            D::Float4e2m1 => (DType::U8, Some(L::F4E2M1), Bits(4), T::Int32Packed),
            D::Uint2 => (DType::U8, other("u2"), Bits(2), T::Int32Packed),
            D::Int2 => (DType::U8, other("i2"), Bits(2), T::Int32Packed),
            D::Float6e2m3 => (DType::U8, other("f6_e2m3"), Bits(6), T::Int32Six),
            D::Float6e3m2 => (DType::U8, other("f6_e3m2"), Bits(6), T::Int32Six),
            D::String => {
                return Err(Error::Unsupported(
                    "ONNX STRING tensors hold variable-length text, not numbers: not supported"
                        .into(),
                ));
            }
            D::Undefined => {
                return Err(Error::malformed(FORMAT, "tensor data type is UNDEFINED"));
            }
        };
        Ok(OnnxType {
            data_type,
            dtype,
            logical_type,
            packing,
            typed,
        })
    }

    /// The ONNX name (`FLOAT8E4M3FN`).
    pub fn name(&self) -> &'static str {
        self.data_type.as_str_name()
    }

    /// Bytes that `shape` takes in this type, overflow-checked.
    pub fn byte_len(&self, shape: &Shape) -> Result<u64, Error> {
        let numel = shape.numel()?;
        let bytes = match self.packing {
            Packing::Bytes(size) => numel.checked_mul(size),
            Packing::Bits(bits) => numel.checked_mul(bits).map(|b| b.div_ceil(8)),
        };
        bytes.ok_or_else(|| Error::ShapeOverflow(shape.dims().to_vec()))
    }

    /// Little-endian element bytes from the typed field of `tensor` (used when it has no
    /// `raw_data`), checked against the `expected` byte length.
    pub fn typed_bytes(&self, tensor: &TensorProto, expected: u64) -> Result<Vec<u8>, Error> {
        // Entries the field must hold for `expected` bytes of output.
        let (field, entries) = match self.typed {
            TypedField::Float => ("float_data", tensor.float_data.len() as u64 * 4),
            TypedField::Double => ("double_data", tensor.double_data.len() as u64 * 8),
            TypedField::Int32(width) => ("int32_data", (tensor.int32_data.len() * width) as u64),
            TypedField::Int32Packed => ("int32_data", tensor.int32_data.len() as u64),
            TypedField::Int32Six => (
                "int32_data",
                (tensor.int32_data.len() as u64 * 6).div_ceil(8),
            ),
            TypedField::Int64 => ("int64_data", tensor.int64_data.len() as u64 * 8),
            TypedField::UInt64(width) => ("uint64_data", (tensor.uint64_data.len() * width) as u64),
        };
        if entries != expected {
            return Err(Error::LengthMismatch {
                component: format!("data ({} {field})", self.name()),
                expected,
                actual: entries,
            });
        }
        let mut out = Vec::with_capacity(expected as usize);
        match self.typed {
            TypedField::Float => tensor
                .float_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes())),
            TypedField::Double => tensor
                .double_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes())),
            TypedField::Int32(width) => tensor
                .int32_data
                .iter()
                .for_each(|v| out.extend(&v.to_le_bytes()[..width])),
            TypedField::Int32Packed => out.extend(tensor.int32_data.iter().map(|&v| v as u8)),
            TypedField::Int32Six => out = pack_bits(tensor.int32_data.iter().map(|&v| v as u8), 6),
            TypedField::Int64 => tensor
                .int64_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes())),
            TypedField::UInt64(width) => tensor
                .uint64_data
                .iter()
                .for_each(|v| out.extend(&v.to_le_bytes()[..width])),
        }
        Ok(out)
    }
}

/// Packs `bits`-wide codes LSB first into bytes, as ONNX `raw_data` stores sub-byte types (for
/// 6-bit codes: four per three bytes, the last group zero-padded and trimmed).
fn pack_bits(codes: impl ExactSizeIterator<Item = u8>, bits: u32) -> Vec<u8> {
    let len = (codes.len() as u64 * u64::from(bits)).div_ceil(8) as usize;
    let mut out = Vec::with_capacity(len);
    let (mut acc, mut filled) = (0u32, 0u32);
    for code in codes {
        acc |= u32::from(code & ((1 << bits) - 1)) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_six_bit_codes_like_onnx() {
        // onnx: byte0 = x0 | (x1 & 3) << 6; byte1 = x1 >> 2 | (x2 & 0xF) << 4; byte2 = x2 >> 4 | x3 << 2.
        let (x0, x1, x2, x3) = (0x08u8, 0x30u8, 0x04u8, 0x3fu8);
        let packed = pack_bits([x0, x1, x2, x3].into_iter(), 6);
        assert_eq!(
            packed,
            [
                x0 | (x1 & 3) << 6,
                x1 >> 2 | (x2 & 0xF) << 4,
                x2 >> 4 | x3 << 2
            ]
        );
        assert_eq!(pack_bits([x0, x1, x2].into_iter(), 6).len(), 3);
        assert_eq!(pack_bits([x0].into_iter(), 6), [x0]);
    }

    #[test]
    fn byte_lengths() {
        let t = |code: DataType| OnnxType::from_code(code as i32).unwrap();
        let shape = Shape::from([3, 5]);
        assert_eq!(t(DataType::Complex128).byte_len(&shape).unwrap(), 240);
        assert_eq!(t(DataType::Int4).byte_len(&shape).unwrap(), 8);
        assert_eq!(t(DataType::Uint2).byte_len(&shape).unwrap(), 4);
        assert_eq!(t(DataType::Float6e2m3).byte_len(&shape).unwrap(), 12);
        assert!(
            t(DataType::Double)
                .byte_len(&Shape::from([1 << 62]))
                .is_err()
        );
        assert!(matches!(
            OnnxType::from_code(DataType::String as i32),
            Err(Error::Unsupported(m)) if m.contains("STRING")
        ));
        assert!(OnnxType::from_code(99).is_err());
        assert!(OnnxType::from_code(0).is_err());
    }
}
