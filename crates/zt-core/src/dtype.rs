//! Storage dtypes (closed set, what the bytes are) and logical types (open set, what they mean).

use std::fmt;

use crate::Error;

/// How one element is laid out in memory: the closed set of `.zt` storage types.
///
/// Multi-byte types are little-endian in every file ztensor writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    /// One byte per element, 0x00 or 0x01.
    Bool,
}

impl DType {
    /// Every storage dtype, in the order the `.zt` spec lists them.
    pub const ALL: [DType; 13] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U64,
        DType::U32,
        DType::U16,
        DType::U8,
        DType::Bool,
    ];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The short name used in `.zt` manifests (`"f32"`, `"bf16"`, `"bool"`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U64 => "u64",
            DType::U32 => "u32",
            DType::U16 => "u16",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    /// The NumPy-style long name (`"float32"`, `"bfloat16"`), as used by legacy `ZTEN0001` files.
    pub const fn long_name(self) -> &'static str {
        match self {
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U64 => "uint64",
            DType::U32 => "uint32",
            DType::U16 => "uint16",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// Parses a short manifest name. Case-sensitive, like zTensor 1.2.
    pub fn from_name(name: &str) -> Result<DType, Error> {
        DType::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| Error::UnknownDType(name.to_owned()))
    }

    /// Parses a NumPy-style long name (legacy `ZTEN0001` manifests).
    pub fn from_long_name(name: &str) -> Result<DType, Error> {
        DType::ALL
            .into_iter()
            .find(|d| d.long_name() == name)
            .ok_or_else(|| Error::UnknownDType(name.to_owned()))
    }

    pub const fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the stored elements mean when the storage dtype alone does not say it.
///
/// The set is open: names ztensor does not know are kept as [`LogicalType::Other`] and passed
/// through unchanged, exactly as zTensor 1.2 does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogicalType {
    /// FP8 E4M3, finite-only (no inf), stored as `u8`.
    F8E4M3Fn,
    /// FP8 E5M2, stored as `u8`.
    F8E5M2,
    /// FP8 E4M3 with unsigned zero and a single NaN, stored as `u8`.
    F8E4M3Fnuz,
    /// FP8 E5M2 with unsigned zero and a single NaN, stored as `u8`.
    F8E5M2Fnuz,
    /// FP8 exponent-only scale (OCP MX), stored as `u8`.
    F8E8M0,
    /// FP4 E2M1, two per byte (low nibble first), stored as `u8`.
    F4E2M1,
    /// Complex of two f32, stored as `f32` with two storage elements per logical element.
    Complex64,
    /// Complex of two f64, stored as `f64` with two storage elements per logical element.
    Complex128,
    /// Any other name, kept verbatim.
    Other(String),
}

impl LogicalType {
    pub fn name(&self) -> &str {
        match self {
            LogicalType::F8E4M3Fn => "f8_e4m3fn",
            LogicalType::F8E5M2 => "f8_e5m2",
            LogicalType::F8E4M3Fnuz => "f8_e4m3fnuz",
            LogicalType::F8E5M2Fnuz => "f8_e5m2fnuz",
            LogicalType::F8E8M0 => "f8_e8m0",
            LogicalType::F4E2M1 => "f4_e2m1",
            LogicalType::Complex64 => "complex64",
            LogicalType::Complex128 => "complex128",
            LogicalType::Other(name) => name,
        }
    }

    /// Never fails: unknown names become [`LogicalType::Other`].
    pub fn from_name(name: &str) -> LogicalType {
        match name {
            "f8_e4m3fn" => LogicalType::F8E4M3Fn,
            "f8_e5m2" => LogicalType::F8E5M2,
            "f8_e4m3fnuz" => LogicalType::F8E4M3Fnuz,
            "f8_e5m2fnuz" => LogicalType::F8E5M2Fnuz,
            "f8_e8m0" => LogicalType::F8E8M0,
            "f4_e2m1" => LogicalType::F4E2M1,
            "complex64" => LogicalType::Complex64,
            "complex128" => LogicalType::Complex128,
            other => LogicalType::Other(other.to_owned()),
        }
    }

    /// The storage dtype this logical type is defined on, where the spec fixes one.
    pub fn storage_dtype(&self) -> Option<DType> {
        match self {
            LogicalType::F8E4M3Fn
            | LogicalType::F8E5M2
            | LogicalType::F8E4M3Fnuz
            | LogicalType::F8E5M2Fnuz
            | LogicalType::F8E8M0
            | LogicalType::F4E2M1 => Some(DType::U8),
            LogicalType::Complex64 => Some(DType::F32),
            LogicalType::Complex128 => Some(DType::F64),
            LogicalType::Other(_) => None,
        }
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()).unwrap(), d);
            assert_eq!(DType::from_long_name(d.long_name()).unwrap(), d);
        }
        assert!(matches!(DType::from_name("F32"), Err(Error::UnknownDType(s)) if s == "F32"));
        assert!(DType::from_name("float32").is_err());
    }

    #[test]
    fn logical_types_are_an_open_set() {
        for name in [
            "f8_e4m3fn",
            "f8_e5m2",
            "f8_e4m3fnuz",
            "f8_e5m2fnuz",
            "f8_e8m0",
            "f4_e2m1",
            "complex64",
            "complex128",
            "my_custom_type",
        ] {
            assert_eq!(LogicalType::from_name(name).name(), name);
        }
        assert_eq!(
            LogicalType::from_name("int3"),
            LogicalType::Other("int3".into())
        );
        assert_eq!(LogicalType::Complex64.storage_dtype(), Some(DType::F32));
    }
}
