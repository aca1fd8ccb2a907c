//! safetensors dtype codes <-> zt-core storage dtype + logical type.
//!
//! The set of codes, their bit widths and their order come from the `safetensors` crate's own
//! [`Dtype`] (the one the Python library is built on), so a code it knows is a code we know.

use safetensors::Dtype;
use zt_core::{DType, Error, LogicalType, Shape};

/// Logical type name of OCP MX FP6 E2M3 (zt-core has no variant for it: kept as `Other`).
pub const F6_E2M3: &str = "f6_e2m3";
/// Logical type name of OCP MX FP6 E3M2 (zt-core has no variant for it: kept as `Other`).
pub const F6_E3M2: &str = "f6_e3m2";

/// The header spelling of a safetensors dtype (`"F8_E4M3"`, `"BOOL"`, ...).
pub fn dtype_code(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::BOOL => "BOOL",
        Dtype::F4 => "F4",
        Dtype::F6_E2M3 => "F6_E2M3",
        Dtype::F6_E3M2 => "F6_E3M2",
        Dtype::U8 => "U8",
        Dtype::I8 => "I8",
        Dtype::F8_E5M2 => "F8_E5M2",
        Dtype::F8_E4M3 => "F8_E4M3",
        Dtype::F8_E8M0 => "F8_E8M0",
        Dtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
        Dtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
        Dtype::I16 => "I16",
        Dtype::U16 => "U16",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        Dtype::I32 => "I32",
        Dtype::U32 => "U32",
        Dtype::F32 => "F32",
        Dtype::C64 => "C64",
        Dtype::F64 => "F64",
        Dtype::I64 => "I64",
        Dtype::U64 => "U64",
        // `Dtype` is non-exhaustive: a newer crate may add codes before this table learns them.
        _ => "UNKNOWN",
    }
}

/// Parses a header dtype code, exactly as the reference reader does (case-sensitive).
pub fn parse_dtype_code(code: &str) -> Result<Dtype, Error> {
    use serde::Deserialize;
    use serde::de::value::{Error as ValueError, StrDeserializer};
    // The crate's own serde names are the authority on which codes exist.
    Dtype::deserialize(StrDeserializer::<ValueError>::new(code))
        .map_err(|_| Error::UnknownDType(code.to_owned()))
}

/// How a safetensors dtype is described in zt-core: storage dtype and logical type.
///
/// FP8/FP6/FP4 kinds are `u8` storage with a logical type (FP4 packs two values per byte, low
/// nibble first; FP6 packs four values into three bytes), `C64` is `f32` storage holding
/// interleaved real/imaginary parts.
pub fn zt_dtype(dtype: Dtype) -> Result<(DType, Option<LogicalType>), Error> {
    let plain = |d: DType| Ok((d, None));
    let bytes_of = |l: LogicalType| Ok((DType::U8, Some(l)));
    match dtype {
        Dtype::BOOL => plain(DType::Bool),
        Dtype::U8 => plain(DType::U8),
        Dtype::I8 => plain(DType::I8),
        Dtype::U16 => plain(DType::U16),
        Dtype::I16 => plain(DType::I16),
        Dtype::U32 => plain(DType::U32),
        Dtype::I32 => plain(DType::I32),
        Dtype::U64 => plain(DType::U64),
        Dtype::I64 => plain(DType::I64),
        Dtype::F16 => plain(DType::F16),
        Dtype::BF16 => plain(DType::BF16),
        Dtype::F32 => plain(DType::F32),
        Dtype::F64 => plain(DType::F64),
        Dtype::F8_E4M3 => bytes_of(LogicalType::F8E4M3Fn),
        Dtype::F8_E5M2 => bytes_of(LogicalType::F8E5M2),
        Dtype::F8_E4M3FNUZ => bytes_of(LogicalType::F8E4M3Fnuz),
        Dtype::F8_E5M2FNUZ => bytes_of(LogicalType::F8E5M2Fnuz),
        Dtype::F8_E8M0 => bytes_of(LogicalType::F8E8M0),
        Dtype::F4 => bytes_of(LogicalType::F4E2M1),
        Dtype::F6_E2M3 => bytes_of(LogicalType::Other(F6_E2M3.to_owned())),
        Dtype::F6_E3M2 => bytes_of(LogicalType::Other(F6_E3M2.to_owned())),
        Dtype::C64 => Ok((DType::F32, Some(LogicalType::Complex64))),
        other => Err(Error::UnknownDType(other.to_string())),
    }
}

/// The safetensors dtype that stores `dtype` with `logical_type`, or an error naming what
/// safetensors cannot represent (complex128, FP8 kinds it lacks, unknown `Other` types, ...).
pub fn safetensors_dtype(dtype: DType, logical_type: Option<&LogicalType>) -> Result<Dtype, Error> {
    let found = match (dtype, logical_type) {
        (DType::Bool, None) => Some(Dtype::BOOL),
        (DType::U8, None) => Some(Dtype::U8),
        (DType::I8, None) => Some(Dtype::I8),
        (DType::U16, None) => Some(Dtype::U16),
        (DType::I16, None) => Some(Dtype::I16),
        (DType::U32, None) => Some(Dtype::U32),
        (DType::I32, None) => Some(Dtype::I32),
        (DType::U64, None) => Some(Dtype::U64),
        (DType::I64, None) => Some(Dtype::I64),
        (DType::F16, None) => Some(Dtype::F16),
        (DType::BF16, None) => Some(Dtype::BF16),
        (DType::F32, None) => Some(Dtype::F32),
        (DType::F64, None) => Some(Dtype::F64),
        (DType::U8, Some(logical)) => match logical {
            LogicalType::F8E4M3Fn => Some(Dtype::F8_E4M3),
            LogicalType::F8E5M2 => Some(Dtype::F8_E5M2),
            LogicalType::F8E4M3Fnuz => Some(Dtype::F8_E4M3FNUZ),
            LogicalType::F8E5M2Fnuz => Some(Dtype::F8_E5M2FNUZ),
            LogicalType::F8E8M0 => Some(Dtype::F8_E8M0),
            LogicalType::F4E2M1 => Some(Dtype::F4),
            LogicalType::Other(name) if name == F6_E2M3 => Some(Dtype::F6_E2M3),
            LogicalType::Other(name) if name == F6_E3M2 => Some(Dtype::F6_E3M2),
            _ => None,
        },
        (DType::F32, Some(LogicalType::Complex64)) => Some(Dtype::C64),
        _ => None,
    };
    found.ok_or_else(|| {
        let what = match logical_type {
            Some(logical) => format!("{dtype} storage with logical type '{logical}'"),
            None => format!("{dtype}"),
        };
        Error::Unsupported(format!("safetensors has no dtype for {what}"))
    })
}

/// The header code (`"F8_E4M3"`, ...) for a zt-core dtype and logical type.
pub fn safetensors_dtype_name(
    dtype: DType,
    logical_type: Option<&LogicalType>,
) -> Result<&'static str, Error> {
    safetensors_dtype(dtype, logical_type).map(dtype_code)
}

/// Bytes taken by the elements of `shape` as `dtype` (overflow-checked, [`Error::ShapeOverflow`]),
/// or `Err` of a message saying why they do not fill a whole number of bytes (F4 and F6).
pub(crate) fn data_len(dtype: Dtype, shape: &Shape) -> Result<Result<u64, String>, Error> {
    let bits = shape
        .numel()?
        .checked_mul(dtype.bitsize() as u64)
        .ok_or_else(|| Error::ShapeOverflow(shape.dims().to_vec()))?;
    Ok(if bits.is_multiple_of(8) {
        Ok(bits / 8)
    } else {
        Err(format!(
            "shape {shape} of {} elements ({bits} bits) is not a whole number of bytes",
            dtype_code(dtype)
        ))
    })
}

/// Every safetensors dtype this crate reads and writes.
pub const ALL_DTYPES: [Dtype; 22] = [
    Dtype::BOOL,
    Dtype::F4,
    Dtype::F6_E2M3,
    Dtype::F6_E3M2,
    Dtype::U8,
    Dtype::I8,
    Dtype::F8_E5M2,
    Dtype::F8_E4M3,
    Dtype::F8_E8M0,
    Dtype::F8_E4M3FNUZ,
    Dtype::F8_E5M2FNUZ,
    Dtype::I16,
    Dtype::U16,
    Dtype::F16,
    Dtype::BF16,
    Dtype::I32,
    Dtype::U32,
    Dtype::F32,
    Dtype::C64,
    Dtype::F64,
    Dtype::I64,
    Dtype::U64,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for st in ALL_DTYPES {
            let code = dtype_code(st);
            assert_eq!(code, st.to_string(), "our spelling is the crate's");
            assert_eq!(parse_dtype_code(code).unwrap(), st);
            let (dtype, logical) = zt_dtype(st).unwrap();
            assert_eq!(safetensors_dtype(dtype, logical.as_ref()).unwrap(), st);
            assert_eq!(
                safetensors_dtype_name(dtype, logical.as_ref()).unwrap(),
                code
            );
        }
    }

    #[test]
    fn codes_are_case_sensitive() {
        assert!(matches!(parse_dtype_code("f32"), Err(Error::UnknownDType(c)) if c == "f32"));
        assert!(parse_dtype_code("F7").is_err());
        assert!(parse_dtype_code("").is_err());
    }

    #[test]
    fn unrepresentable_types_say_why() {
        let err = safetensors_dtype(DType::F64, Some(&LogicalType::Complex128)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported: safetensors has no dtype for f64 storage with logical type 'complex128'"
        );
        let int4 = LogicalType::Other("int4".into());
        assert!(safetensors_dtype(DType::U8, Some(&int4)).is_err());
        // A logical type on the wrong storage is refused, not silently dropped.
        assert!(safetensors_dtype(DType::U16, Some(&LogicalType::F8E4M3Fn)).is_err());
        assert!(safetensors_dtype(DType::F64, Some(&LogicalType::Complex64)).is_err());
    }
}
