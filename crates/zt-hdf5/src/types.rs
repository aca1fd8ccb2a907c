//! HDF5 element types that are tensors, and reading them through libhdf5 as little-endian bytes.

use hdf5::types::{CompoundType, FloatSize, H5Type, IntSize, TypeDescriptor};
use hdf5::{Dataset, Datatype, H5Type as DeriveH5Type};
use zt_core::{DType, Error, LogicalType};

use crate::reader::lib_error;

/// An element type zt-hdf5 reads as a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    F32,
    F64,
    /// h5py's boolean: an enum `{FALSE = 0, TRUE = 1}` over a 1-byte integer.
    Bool,
    /// h5py's complex: a compound `{r, i}` of two f32 (or f64).
    Complex64,
    Complex128,
}

/// One element of h5py's complex64 layout, for reads through libhdf5 (which converts compounds
/// by member name, so the names must be h5py's).
#[derive(DeriveH5Type, Clone, Copy, Default)]
#[repr(C)]
struct Complex32 {
    r: f32,
    i: f32,
}

#[derive(DeriveH5Type, Clone, Copy, Default)]
#[repr(C)]
struct Complex64Pair {
    r: f64,
    i: f64,
}

/// A boolean read as its byte: any bit pattern is a valid `u8`, whereas reading a file's bytes
/// into Rust `bool` would be undefined behaviour for values other than 0 and 1 (HDF5 copies enum
/// values of identical types unchecked).
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct BoolByte(pub u8);

// SAFETY: `BoolByte` is one byte (repr(transparent) over u8), exactly the size of the
// `TypeDescriptor::Boolean` type (an enum over a 1-byte integer), and every byte value is a
// valid `BoolByte`, so whatever libhdf5 writes into it is sound.
unsafe impl H5Type for BoolByte {
    fn type_descriptor() -> TypeDescriptor {
        TypeDescriptor::Boolean
    }
}

impl Element {
    /// The element type of a dataset, or why it is not a tensor.
    pub fn from_descriptor(descriptor: &TypeDescriptor) -> Result<Element, String> {
        use TypeDescriptor as T;
        Ok(match descriptor {
            T::Integer(IntSize::U1) => Element::I8,
            T::Integer(IntSize::U2) => Element::I16,
            T::Integer(IntSize::U4) => Element::I32,
            T::Integer(IntSize::U8) => Element::I64,
            T::Unsigned(IntSize::U1) => Element::U8,
            T::Unsigned(IntSize::U2) => Element::U16,
            T::Unsigned(IntSize::U4) => Element::U32,
            T::Unsigned(IntSize::U8) => Element::U64,
            T::Float(FloatSize::U2) => Element::F16,
            T::Float(FloatSize::U4) => Element::F32,
            T::Float(FloatSize::U8) => Element::F64,
            T::Boolean => Element::Bool,
            T::Compound(compound) => match complex_float(compound) {
                Some(FloatSize::U4) => Element::Complex64,
                Some(FloatSize::U8) => Element::Complex128,
                _ => {
                    return Err(format!(
                        "{descriptor}: only h5py's complex compound {{r, i}} is a tensor"
                    ));
                }
            },
            T::Enum(_) => {
                return Err(format!(
                    "{descriptor}: only h5py's boolean enum is a tensor"
                ));
            }
            other => return Err(format!("{other}: not a numeric element type")),
        })
    }

    pub fn dtype(self) -> DType {
        match self {
            Element::I8 => DType::I8,
            Element::I16 => DType::I16,
            Element::I32 => DType::I32,
            Element::I64 => DType::I64,
            Element::U8 => DType::U8,
            Element::U16 => DType::U16,
            Element::U32 => DType::U32,
            Element::U64 => DType::U64,
            Element::F16 => DType::F16,
            Element::F32 | Element::Complex64 => DType::F32,
            Element::F64 | Element::Complex128 => DType::F64,
            Element::Bool => DType::Bool,
        }
    }

    pub fn logical_type(self) -> Option<LogicalType> {
        match self {
            Element::Complex64 => Some(LogicalType::Complex64),
            Element::Complex128 => Some(LogicalType::Complex128),
            _ => None,
        }
    }

    /// Bytes per element (both halves of a complex).
    pub fn size(self) -> u64 {
        match self {
            Element::Complex64 => 8,
            Element::Complex128 => 16,
            other => other.dtype().size() as u64,
        }
    }

    /// The in-memory type libhdf5 reads this element as: native byte order, h5py's layout. A
    /// file type equal to it on a little-endian host means the file bytes are the element
    /// bytes.
    pub fn memory_type(self) -> hdf5::Result<Datatype> {
        match self {
            Element::I8 => Datatype::from_type::<i8>(),
            Element::I16 => Datatype::from_type::<i16>(),
            Element::I32 => Datatype::from_type::<i32>(),
            Element::I64 => Datatype::from_type::<i64>(),
            Element::U8 => Datatype::from_type::<u8>(),
            Element::U16 => Datatype::from_type::<u16>(),
            Element::U32 => Datatype::from_type::<u32>(),
            Element::U64 => Datatype::from_type::<u64>(),
            Element::F16 => Datatype::from_type::<half::f16>(),
            Element::F32 => Datatype::from_type::<f32>(),
            Element::F64 => Datatype::from_type::<f64>(),
            Element::Bool => Datatype::from_type::<BoolByte>(),
            Element::Complex64 => Datatype::from_type::<Complex32>(),
            Element::Complex128 => Datatype::from_type::<Complex64Pair>(),
        }
    }

    /// Reads the `count` elements of the dataset through libhdf5 (which decompresses, gathers
    /// chunks and converts byte order) and returns them as little-endian bytes. Buffers are
    /// allocated fallibly: a size the machine cannot hold is an error, not an abort.
    pub fn read(self, dataset: &Dataset, count: usize) -> Result<Vec<u8>, Error> {
        fn le<T: H5Type + Copy + Default, const N: usize>(
            dataset: &Dataset,
            count: usize,
            to_le: impl Fn(T) -> [u8; N],
        ) -> Result<Vec<u8>, Error> {
            let mut values: Vec<T> = allocate(count)?;
            values.resize(count, T::default());
            dataset
                .read_into_raw(&mut values)
                .map_err(|e| lib_error("reading the dataset", e))?;
            let mut out = allocate(count.saturating_mul(N))?;
            for value in values {
                out.extend_from_slice(&to_le(value));
            }
            Ok(out)
        }
        match self {
            Element::I8 => le(dataset, count, i8::to_le_bytes),
            Element::I16 => le(dataset, count, i16::to_le_bytes),
            Element::I32 => le(dataset, count, i32::to_le_bytes),
            Element::I64 => le(dataset, count, i64::to_le_bytes),
            Element::U8 => le(dataset, count, u8::to_le_bytes),
            Element::U16 => le(dataset, count, u16::to_le_bytes),
            Element::U32 => le(dataset, count, u32::to_le_bytes),
            Element::U64 => le(dataset, count, u64::to_le_bytes),
            Element::F16 => le(dataset, count, half::f16::to_le_bytes),
            Element::F32 => le(dataset, count, f32::to_le_bytes),
            Element::F64 => le(dataset, count, f64::to_le_bytes),
            Element::Bool => le(dataset, count, |b: BoolByte| [b.0]),
            Element::Complex64 => le(dataset, count, |c: Complex32| {
                let mut out = [0; 8];
                out[..4].copy_from_slice(&c.r.to_le_bytes());
                out[4..].copy_from_slice(&c.i.to_le_bytes());
                out
            }),
            Element::Complex128 => le(dataset, count, |c: Complex64Pair| {
                let mut out = [0; 16];
                out[..8].copy_from_slice(&c.r.to_le_bytes());
                out[8..].copy_from_slice(&c.i.to_le_bytes());
                out
            }),
        }
    }
}

/// An empty vector with room for `count` elements, or an error if that much memory cannot be had.
fn allocate<T>(count: usize) -> Result<Vec<T>, Error> {
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(count).map_err(|_| {
        Error::Unsupported(format!(
            "cannot allocate {count} elements of {} bytes to read the dataset",
            std::mem::size_of::<T>()
        ))
    })?;
    Ok(buffer)
}

/// The float size of h5py's complex compound: exactly two members `r` and `i` of the same
/// float type, `r` first, packed.
fn complex_float(compound: &CompoundType) -> Option<FloatSize> {
    let [r, i] = compound.fields.as_slice() else {
        return None;
    };
    let (TypeDescriptor::Float(size), TypeDescriptor::Float(size_i)) = (&r.ty, &i.ty) else {
        return None;
    };
    let bytes = r.ty.size();
    (r.name == "r"
        && i.name == "i"
        && size == size_i
        && r.offset == 0
        && i.offset == bytes
        && compound.size == 2 * bytes)
        .then_some(*size)
}
