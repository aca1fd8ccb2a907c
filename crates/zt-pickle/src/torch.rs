//! What torch's pickles mean: dtypes, storage classes, persistent ids and tensor rebuilds.

use zt_core::{DType, Error, LogicalType};

use crate::MAX_RANK;
use crate::pickle::{Arena, Object, Val};

const FORMAT: &str = "pickle";

/// A torch dtype this reader can hand out, and how its elements map onto zt-core types.
#[derive(Debug, PartialEq, Eq)]
pub struct TorchDtype {
    /// The attribute of the `torch` module (`"float32"`), as pickles name it.
    pub name: &'static str,
    /// The legacy storage class that carries it in `torch.save` files (`"FloatStorage"`).
    pub storage_class: Option<&'static str>,
    pub dtype: DType,
    /// Name of the zt-core logical type, if the storage dtype alone does not say it.
    pub logical: Option<&'static str>,
    /// Bytes per torch element (a complex64 is 8, a float4_e2m1fn_x2 byte holds two values).
    /// Big-endian files swap each scalar of `dtype.size()` bytes (each half of a complex).
    pub element_size: u64,
}

impl TorchDtype {
    pub fn logical_type(&self) -> Option<LogicalType> {
        self.logical.map(LogicalType::from_name)
    }

    pub fn is_complex(&self) -> bool {
        self.element_size == 2 * self.dtype.size() as u64
    }

    /// FP4: torch counts bytes (two values each); the logical shape counts values.
    pub fn is_fp4_pair(&self) -> bool {
        self.logical == Some("f4_e2m1")
    }

    pub fn is_float(&self) -> bool {
        self.dtype.is_float()
    }
}

const fn dt(
    name: &'static str,
    storage_class: Option<&'static str>,
    dtype: DType,
    logical: Option<&'static str>,
    element_size: u64,
) -> TorchDtype {
    TorchDtype {
        name,
        storage_class,
        dtype,
        logical,
        element_size,
    }
}

/// Every dtype read. The first twelve are the ones torch still writes through a legacy
/// `<Name>Storage` class (`torch.storage._dtype_to_storage_type_map`); the rest are written as
/// `torch.storage.UntypedStorage` plus a `torch.<dtype>` global (`_rebuild_tensor_v3`). The
/// `Float8_*Storage` names are not written by torch 2.x (FP8 goes through UntypedStorage) but
/// are accepted should another writer use them.
pub static DTYPES: &[TorchDtype] = &[
    dt("float64", Some("DoubleStorage"), DType::F64, None, 8),
    dt("float32", Some("FloatStorage"), DType::F32, None, 4),
    dt("float16", Some("HalfStorage"), DType::F16, None, 2),
    dt("bfloat16", Some("BFloat16Storage"), DType::BF16, None, 2),
    dt("int64", Some("LongStorage"), DType::I64, None, 8),
    dt("int32", Some("IntStorage"), DType::I32, None, 4),
    dt("int16", Some("ShortStorage"), DType::I16, None, 2),
    dt("int8", Some("CharStorage"), DType::I8, None, 1),
    dt("uint8", Some("ByteStorage"), DType::U8, None, 1),
    dt("bool", Some("BoolStorage"), DType::Bool, None, 1),
    dt(
        "complex64",
        Some("ComplexFloatStorage"),
        DType::F32,
        Some("complex64"),
        8,
    ),
    dt(
        "complex128",
        Some("ComplexDoubleStorage"),
        DType::F64,
        Some("complex128"),
        16,
    ),
    dt("complex32", None, DType::F16, Some("complex32"), 4),
    dt("uint16", None, DType::U16, None, 2),
    dt("uint32", None, DType::U32, None, 4),
    dt("uint64", None, DType::U64, None, 8),
    dt(
        "float8_e4m3fn",
        Some("Float8_e4m3fnStorage"),
        DType::U8,
        Some("f8_e4m3fn"),
        1,
    ),
    dt(
        "float8_e5m2",
        Some("Float8_e5m2Storage"),
        DType::U8,
        Some("f8_e5m2"),
        1,
    ),
    dt(
        "float8_e4m3fnuz",
        Some("Float8_e4m3fnuzStorage"),
        DType::U8,
        Some("f8_e4m3fnuz"),
        1,
    ),
    dt(
        "float8_e5m2fnuz",
        Some("Float8_e5m2fnuzStorage"),
        DType::U8,
        Some("f8_e5m2fnuz"),
        1,
    ),
    dt("float8_e8m0fnu", None, DType::U8, Some("f8_e8m0"), 1),
    dt("float4_e2m1fn_x2", None, DType::U8, Some("f4_e2m1"), 1),
];

/// `torch.uint8`: the dtype of an untyped storage.
pub fn byte_dtype() -> &'static TorchDtype {
    dtype_by_name("uint8").expect("in the table")
}

pub fn dtype_by_name(name: &str) -> Option<&'static TorchDtype> {
    DTYPES.iter().find(|d| d.name == name)
}

pub fn dtype_by_storage_class(class: &str) -> Option<&'static TorchDtype> {
    DTYPES.iter().find(|d| d.storage_class == Some(class))
}

/// A storage named by a persistent id `("storage", <StorageType>, key, location, numel)`
/// (legacy files add a sixth item, an optional view of another storage).
#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    /// The record that holds the bytes (`data/<key>` in a zip, the key in a legacy file).
    pub key: String,
    /// The storage's dtype (`uint8` for an untyped storage).
    pub dtype: &'static TorchDtype,
    /// Elements of `dtype` the whole record holds, as the persistent id declares.
    pub numel: u64,
    /// Device the storage was saved from (`"cpu"`, `"cuda:0"`).
    pub location: String,
    /// Legacy storage views: the part of the record this storage covers, in bytes.
    pub view: Option<ByteSpan>,
}

impl Storage {
    /// Bytes the whole record must hold.
    pub fn record_len(&self) -> Result<u64, Error> {
        self.numel
            .checked_mul(self.dtype.element_size)
            .ok_or_else(|| malformed(format!("storage '{}' size overflows", self.key)))
    }

    /// Bytes of the record this storage covers.
    pub fn span(&self) -> Result<ByteSpan, Error> {
        match self.view {
            Some(view) => Ok(view),
            None => Ok(ByteSpan {
                offset: 0,
                len: self.record_len()?,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSpan {
    pub offset: u64,
    pub len: u64,
}

/// A tensor as `torch._utils._rebuild_tensor*` would build it: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub storage: Storage,
    pub dtype: &'static TorchDtype,
    /// In elements of `dtype`.
    pub storage_offset: u64,
    pub size: Vec<u64>,
    /// In elements of `dtype`; torch forbids negative strides.
    pub stride: Vec<u64>,
    /// The lazy conjugate bit (`tensor.conj()` saved without resolving it).
    pub conj: bool,
    /// The lazy negative bit (`tensor.conj().imag`).
    pub neg: bool,
}

pub(crate) fn malformed(reason: impl Into<String>) -> Error {
    Error::malformed(FORMAT, reason)
}

/// torch's `persistent_load` for `("storage", ...)` ids, without allocating anything.
pub(crate) fn persistent_load(arena: &mut Arena, pid: Val) -> Result<Val, Error> {
    let Some(items) = arena.tuple(pid) else {
        return Err(malformed(format!(
            "persistent id is a {}, not a tuple",
            arena.type_name(pid)
        )));
    };
    let typename = items.first().and_then(|&v| arena.text(v)).unwrap_or("");
    if typename != "storage" {
        return Err(Error::Unsupported(format!(
            "persistent id of type '{}' (only 'storage' ids are read)",
            typename.escape_debug()
        )));
    }
    if !(items.len() == 5 || items.len() == 6) {
        return Err(malformed(format!(
            "storage persistent id has {} items, expected 5 (or 6 in legacy files)",
            items.len()
        )));
    }
    let dtype = match arena.get(items[1]) {
        Some(Object::Global(crate::globals::Global::StorageType(d))) => *d,
        Some(Object::Global(crate::globals::Global::UntypedStorage)) => byte_dtype(),
        _ => {
            return Err(malformed(format!(
                "storage persistent id names a {}, not a storage class",
                arena.type_name(items[1])
            )));
        }
    };
    let key = arena
        .text(items[2])
        .ok_or_else(|| malformed("storage key is not a string"))?
        .to_owned();
    let location = arena.text(items[3]).unwrap_or("").to_owned();
    let numel = non_negative(arena.int(items[4]), "storage numel")?;
    let mut storage = Storage {
        key,
        dtype,
        numel,
        location,
        view: None,
    };
    if let Some(&view) = items.get(5)
        && view != Val::None
    {
        storage.view = Some(legacy_view(arena, view, &mut storage)?);
    }
    arena.alloc(Object::Storage(Box::new(storage)))
}

/// Legacy view metadata `(view_key, offset, size)`, in elements of the storage dtype: the storage
/// becomes the viewed part of the root record.
fn legacy_view(arena: &Arena, view: Val, storage: &mut Storage) -> Result<ByteSpan, Error> {
    let items = arena
        .tuple(view)
        .filter(|items| items.len() == 3)
        .ok_or_else(|| malformed("legacy storage view is not (key, offset, size)"))?;
    let offset = non_negative(arena.int(items[1]), "storage view offset")?;
    let len = non_negative(arena.int(items[2]), "storage view size")?;
    let es = storage.dtype.element_size;
    let span = ByteSpan {
        offset: offset
            .checked_mul(es)
            .ok_or_else(|| malformed("storage view offset overflows"))?,
        len: len
            .checked_mul(es)
            .ok_or_else(|| malformed("storage view size overflows"))?,
    };
    let end = span.offset.checked_add(span.len);
    if end.is_none_or(|end| end > storage.record_len().unwrap_or(0)) {
        return Err(malformed(format!(
            "storage view {}..+{} lies outside storage '{}' of {} bytes",
            span.offset,
            span.len,
            storage.key,
            storage.record_len().unwrap_or(0)
        )));
    }
    Ok(span)
}

/// Which tensor-rebuild function is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// `_rebuild_tensor(storage, storage_offset, size, stride)`.
    V1,
    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])`.
    V2,
    /// `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])`.
    V3,
}

/// Builds the [`Tensor`] a rebuild call describes, checking every count.
pub(crate) fn rebuild_tensor(arena: &mut Arena, kind: Rebuild, args: &[Val]) -> Result<Val, Error> {
    let (min, max) = match kind {
        Rebuild::V1 => (4, 4),
        Rebuild::V2 => (6, 7),
        Rebuild::V3 => (7, 8),
    };
    if args.len() < min || args.len() > max {
        return Err(malformed(format!(
            "tensor rebuild takes {min} to {max} arguments, got {}",
            args.len()
        )));
    }
    let storage = match arena.get(args[0]) {
        Some(Object::Storage(s)) => (**s).clone(),
        _ => {
            return Err(malformed(format!(
                "tensor rebuilt from a {}, not a storage",
                arena.type_name(args[0])
            )));
        }
    };
    let storage_offset = non_negative(arena.int(args[1]), "storage offset")?;
    let size = int_tuple(arena, args[2], "size")?;
    let stride = int_tuple(arena, args[3], "stride")?;
    if size.len() != stride.len() {
        return Err(malformed(format!(
            "tensor has {} dimensions but {} strides",
            size.len(),
            stride.len()
        )));
    }
    let (dtype, metadata) = match kind {
        Rebuild::V1 => (storage.dtype, None),
        Rebuild::V2 => (storage.dtype, args.get(6).copied()),
        Rebuild::V3 => {
            let dtype = match arena.get(args[6]) {
                Some(Object::Global(crate::globals::Global::Dtype(d))) => *d,
                _ => {
                    return Err(malformed(format!(
                        "tensor dtype is a {}, not a torch dtype",
                        arena.type_name(args[6])
                    )));
                }
            };
            (dtype, args.get(7).copied())
        }
    };
    let (conj, neg) = match metadata {
        Some(m) => tensor_flags(arena, m)?,
        None => (false, false),
    };
    if (conj && !dtype.is_complex()) || (neg && !dtype.is_float()) {
        return Err(Error::Unsupported(format!(
            "a {} tensor with the {} bit set",
            dtype.name,
            if conj { "conjugate" } else { "negative" }
        )));
    }
    arena.alloc(Object::Tensor(Box::new(Tensor {
        storage,
        dtype,
        storage_offset,
        size,
        stride,
        conj,
        neg,
    })))
}

/// The `{"conj": bool, "neg": bool}` metadata of `torch._utils.get_tensor_metadata`.
fn tensor_flags(arena: &Arena, metadata: Val) -> Result<(bool, bool), Error> {
    match arena.get(metadata) {
        None if metadata == Val::None => Ok((false, false)),
        Some(Object::Dict(entries)) => {
            let mut flags = (false, false);
            for &(k, v) in entries {
                let on = arena.int(v).is_some_and(|i| i != 0);
                match arena.text(k) {
                    Some("conj") => flags.0 = on,
                    Some("neg") => flags.1 = on,
                    _ => {}
                }
            }
            Ok(flags)
        }
        _ => Err(malformed(format!(
            "tensor metadata is a {}, not a dict",
            arena.type_name(metadata)
        ))),
    }
}

fn non_negative(v: Option<i128>, what: &str) -> Result<u64, Error> {
    v.and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| malformed(format!("{what} is not a non-negative integer")))
}

fn int_tuple(arena: &Arena, val: Val, what: &str) -> Result<Vec<u64>, Error> {
    let items = match arena.get(val) {
        Some(Object::Tuple(items) | Object::List(items)) => items,
        _ => {
            return Err(malformed(format!(
                "tensor {what} is a {}, not a tuple",
                arena.type_name(val)
            )));
        }
    };
    if items.len() > MAX_RANK {
        return Err(Error::LimitExceeded {
            what: format!("tensor rank ({what})"),
            size: items.len() as u64,
            limit: MAX_RANK as u64,
        });
    }
    items
        .iter()
        .map(|&v| non_negative(arena.int(v), &format!("tensor {what} entry")))
        .collect()
}
