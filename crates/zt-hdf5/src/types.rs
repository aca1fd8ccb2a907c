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

/// Runs `$body` with `$T` the in-memory type libhdf5 reads `$element` as (see
/// [`Element::memory_type`]).
macro_rules! with_plain_type {
    ($element:expr, $T:ident => $body:expr) => {
        match $element {
            Element::I8 => {
                type $T = i8;
                $body
            }
            Element::I16 => {
                type $T = i16;
                $body
            }
            Element::I32 => {
                type $T = i32;
                $body
            }
            Element::I64 => {
                type $T = i64;
                $body
            }
            Element::U8 => {
                type $T = u8;
                $body
            }
            Element::U16 => {
                type $T = u16;
                $body
            }
            Element::U32 => {
                type $T = u32;
                $body
            }
            Element::U64 => {
                type $T = u64;
                $body
            }
            Element::F16 => {
                type $T = half::f16;
                $body
            }
            Element::F32 => {
                type $T = f32;
                $body
            }
            Element::F64 => {
                type $T = f64;
                $body
            }
            Element::Bool => {
                type $T = BoolByte;
                $body
            }
            Element::Complex64 => {
                type $T = Complex32;
                $body
            }
            Element::Complex128 => {
                type $T = Complex64Pair;
                $body
            }
        }
    };
}

impl Element {
    /// Every element type, in the order of [`index`](Element::index).
    const ALL: [Element; 14] = [
        Element::I8,
        Element::I16,
        Element::I32,
        Element::I64,
        Element::U8,
        Element::U16,
        Element::U32,
        Element::U64,
        Element::F16,
        Element::F32,
        Element::F64,
        Element::Bool,
        Element::Complex64,
        Element::Complex128,
    ];

    /// A small number for the element type (isolated children send it).
    #[cfg_attr(not(unix), allow(dead_code))]
    pub fn index(self) -> u8 {
        Self::ALL.iter().position(|&e| e == self).unwrap_or(0) as u8
    }

    #[cfg_attr(not(unix), allow(dead_code))]
    pub fn from_index(index: u8) -> Option<Element> {
        Self::ALL.get(usize::from(index)).copied()
    }

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
        with_plain_type!(self, T => Datatype::from_type::<T>())
    }

    /// Reads the `count` elements of the dataset through libhdf5 (which decompresses, gathers
    /// chunks and converts byte order) and returns them as little-endian bytes. Buffers are
    /// allocated fallibly: a size the machine cannot hold is an error, not an abort.
    pub fn read(self, dataset: &Dataset, count: usize) -> Result<Vec<u8>, Error> {
        fn read<T: Plain>(dataset: &Dataset, count: usize) -> Result<Vec<u8>, Error> {
            let mut values: Vec<T> = allocate(count)?;
            values.resize(count, T::default());
            dataset
                .read_into_raw(&mut values)
                .map_err(|e| lib_error("reading the dataset", e))?;
            let mut out = allocate(std::mem::size_of_val(values.as_slice()))?;
            out.extend_from_slice(T::bytes(&values));
            Ok(out)
        }
        let mut out = with_plain_type!(self, T => read::<T>(dataset, count))?;
        self.native_to_le(&mut out);
        Ok(out)
    }

    /// Reads every element of the dataset through libhdf5 into `out` (exactly their size, and
    /// aligned for the element type, as a page-aligned shared mapping is) as little-endian
    /// bytes: the same bytes [`read`](Element::read) returns, without a buffer of its own.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub fn read_into(self, dataset: &Dataset, out: &mut [u8]) -> Result<(), Error> {
        fn read_into<T: Plain>(dataset: &Dataset, out: &mut [u8]) -> Result<(), Error> {
            let values = T::from_bytes_mut(out).ok_or_else(|| {
                Error::InvalidArgument("read buffer of the wrong size or alignment".into())
            })?;
            dataset
                .read_into_raw(values)
                .map_err(|e| lib_error("reading the dataset", e))?;
            Ok(())
        }
        with_plain_type!(self, T => read_into::<T>(dataset, out))?;
        self.native_to_le(out);
        Ok(())
    }

    /// Turns native-order elements into little-endian ones in place: nothing to do on a
    /// little-endian host; elsewhere each number (each half of a complex) is reversed.
    fn native_to_le(self, bytes: &mut [u8]) {
        if cfg!(target_endian = "big") {
            let scalar = match self {
                Element::Complex64 | Element::Complex128 => self.size() as usize / 2,
                other => other.size() as usize,
            };
            for number in bytes.chunks_exact_mut(scalar) {
                number.reverse();
            }
        }
    }
}

/// Element types whose values are plain bytes: no padding, every bit pattern valid.
///
/// # Safety
///
/// Implementors must have no padding bytes and accept every bit pattern of their size.
unsafe trait Plain: H5Type + Copy + Default {
    fn bytes(values: &[Self]) -> &[u8] {
        // SAFETY: `Plain` types have no padding, so every byte of the slice is initialised, and
        // the byte slice covers exactly the same memory for the same lifetime.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
    }

    /// `bytes` as values, or `None` when its length or alignment does not fit `Self`.
    #[cfg_attr(not(unix), allow(dead_code))]
    fn from_bytes_mut(bytes: &mut [u8]) -> Option<&mut [Self]> {
        let size = std::mem::size_of::<Self>();
        if !bytes.len().is_multiple_of(size) || !bytes.as_ptr().cast::<Self>().is_aligned() {
            return None;
        }
        // SAFETY: length and alignment were checked above, every bit pattern is a valid `Self`
        // (the trait's contract), and the exclusive borrow of `bytes` moves to the result.
        Some(unsafe {
            std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len() / size)
        })
    }
}

// SAFETY: primitive integers and floats have no padding and every bit pattern is valid; `BoolByte`
// is a transparent `u8`; the complex pairs are `repr(C)` pairs of one float type (no padding
// between or after two equal-sized floats).
unsafe impl Plain for i8 {}
// SAFETY: see above.
unsafe impl Plain for i16 {}
// SAFETY: see above.
unsafe impl Plain for i32 {}
// SAFETY: see above.
unsafe impl Plain for i64 {}
// SAFETY: see above.
unsafe impl Plain for u8 {}
// SAFETY: see above.
unsafe impl Plain for u16 {}
// SAFETY: see above.
unsafe impl Plain for u32 {}
// SAFETY: see above.
unsafe impl Plain for u64 {}
// SAFETY: see above.
unsafe impl Plain for half::f16 {}
// SAFETY: see above.
unsafe impl Plain for f32 {}
// SAFETY: see above.
unsafe impl Plain for f64 {}
// SAFETY: see above.
unsafe impl Plain for BoolByte {}
// SAFETY: see above.
unsafe impl Plain for Complex32 {}
// SAFETY: see above.
unsafe impl Plain for Complex64Pair {}

/// An empty vector with room for `count` elements, or an error if that much memory cannot be had.
pub(crate) fn allocate<T>(count: usize) -> Result<Vec<T>, Error> {
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
