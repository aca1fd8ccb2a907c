//! The allowed globals and the only things a pickle can do with them.
//!
//! The table follows torch's own weights-only unpickler (`torch/_weights_only_unpickler.py`,
//! `_get_allowed_globals`), minus everything that builds something other than plain data or a
//! dense tensor. Each entry is a tag; "calling" one applies a fixed rule written here, over
//! values already in the arena. Nothing is imported, looked up dynamically, or executed.

use zt_core::Error;

use crate::pickle::{Arena, Object, Val};
use crate::torch::{self, Rebuild, TorchDtype, malformed};

/// A global the machine knows. Every other `module.name` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`: a dict.
    OrderedDict,
    /// `collections.Counter`: a dict of counts.
    Counter,
    /// `builtins.set` / `builtins.frozenset` (protocol 2 writes sets as `set([...])`).
    Set,
    /// `builtins.bytearray`.
    ByteArray,
    /// `builtins.complex`.
    Complex,
    /// `_codecs.encode`: how protocol 2 writes `bytes` (`encode("\x00..", "latin1")`).
    CodecsEncode,
    /// `torch._utils._rebuild_tensor*`.
    RebuildTensor(Rebuild),
    /// `torch._utils._rebuild_parameter`: an `nn.Parameter` is read as its tensor.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`: the same, ignoring the Python state.
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2`: a tensor with Python attributes.
    RebuildFromType,
    /// `torch.nn.parameter.Parameter`: as a class tag, or called on a tensor.
    Parameter,
    /// `torch.Tensor` (`torch._tensor.Tensor`): only as a class tag.
    TensorClass,
    /// `torch.Size`: a tuple.
    Size,
    /// `torch.device`.
    Device,
    /// A legacy storage class (`torch.FloatStorage`).
    StorageType(&'static TorchDtype),
    /// `torch.storage.UntypedStorage` (bytes, typed by the tensor's `dtype` argument).
    UntypedStorage,
    /// A dtype (`torch.float8_e4m3fn`).
    Dtype(&'static TorchDtype),
}

/// Torch globals that are safe but build what this reader does not read: refused with a message
/// that says what the file holds, rather than "not allowed".
const UNSUPPORTED_TORCH: &[(&str, &str)] = &[
    ("torch._utils._rebuild_qtensor", "quantized tensors"),
    ("torch._utils._rebuild_sparse_tensor", "sparse tensors"),
    ("torch._utils._rebuild_nested_tensor", "nested tensors"),
    (
        "torch._utils._rebuild_meta_tensor_no_storage",
        "meta tensors (they hold no data)",
    ),
    (
        "torch._utils._rebuild_wrapper_subclass",
        "tensor subclasses",
    ),
    (
        "torch._utils._rebuild_device_tensor_from_numpy",
        "tensors stored as numpy arrays",
    ),
    (
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "device-specific tensors",
    ),
    ("torch.serialization._get_layout", "sparse tensors"),
];

/// Looks a global up by module and name; anything not in the table is refused, and nothing is
/// imported either way.
pub fn resolve(module: &str, name: &str) -> Result<Global, Error> {
    // Protocol 0-2 pickles name builtins the Python 2 way (pickle's fix_imports).
    let module = match module {
        "__builtin__" => "builtins",
        m => m,
    };
    let global = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("collections", "Counter") => Global::Counter,
        ("builtins", "set" | "frozenset") => Global::Set,
        ("builtins", "bytearray") => Global::ByteArray,
        ("builtins", "complex") => Global::Complex,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor(Rebuild::V1),
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor(Rebuild::V2),
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensor(Rebuild::V3),
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromType,
        ("torch.nn.parameter", "Parameter") => Global::Parameter,
        ("torch._tensor" | "torch", "Tensor") => Global::TensorClass,
        ("torch", "Size") => Global::Size,
        ("torch", "device") => Global::Device,
        ("torch" | "torch.storage", "UntypedStorage") => Global::UntypedStorage,
        // Files saved from CUDA by old torch name `torch.cuda.FloatStorage`.
        ("torch" | "torch.cuda", class) if torch::dtype_by_storage_class(class).is_some() => {
            Global::StorageType(torch::dtype_by_storage_class(class).expect("checked"))
        }
        ("torch", dtype) if torch::dtype_by_name(dtype).is_some() => {
            Global::Dtype(torch::dtype_by_name(dtype).expect("checked"))
        }
        _ => {
            let full = format!("{module}.{name}");
            if let Some((_, what)) = UNSUPPORTED_TORCH.iter().find(|(g, _)| *g == full) {
                return Err(Error::Unsupported(format!(
                    "{what} ('{full}' in the pickle)"
                )));
            }
            if module == "torch" && (name.starts_with('Q') && name.ends_with("Storage")) {
                return Err(Error::Unsupported(format!(
                    "quantized tensors ('{full}' in the pickle)"
                )));
            }
            return Err(Error::ForbiddenGlobal { global: full });
        }
    };
    Ok(global)
}

/// `REDUCE` (and `INST`/`OBJ`): the fixed meaning of "calling" an allowed global.
pub(crate) fn call(arena: &mut Arena, global: Global, args: &[Val]) -> Result<Val, Error> {
    match global {
        Global::OrderedDict | Global::Counter => {
            let entries = match args {
                [] => Vec::new(),
                [init] => dict_init(arena, *init)?,
                _ => return Err(arity("OrderedDict", args.len())),
            };
            arena.alloc(Object::Dict(entries))
        }
        Global::Set => {
            let items = match args {
                [] => Vec::new(),
                [init] => sequence(arena, *init, "set")?.to_vec(),
                _ => return Err(arity("set", args.len())),
            };
            arena.alloc(Object::Set(items))
        }
        Global::ByteArray => {
            let bytes = match args {
                [] => Vec::new(),
                [data] => match arena.get(*data) {
                    Some(Object::Bytes(b)) => b.clone(),
                    _ => return Err(malformed("bytearray() of something that is not bytes")),
                },
                [text, encoding] => latin1(arena, *text, *encoding)?,
                _ => return Err(arity("bytearray", args.len())),
            };
            arena.alloc(Object::Bytes(bytes))
        }
        Global::CodecsEncode => match args {
            [text, encoding] => {
                let bytes = latin1(arena, *text, *encoding)?;
                arena.alloc(Object::Bytes(bytes))
            }
            _ => Err(arity("_codecs.encode", args.len())),
        },
        Global::Complex => {
            let part = |v: Option<&Val>| match v {
                None => Some(0.0),
                Some(Val::Float(f)) => Some(*f),
                Some(&v) => arena.int(v).map(|i| i as f64),
            };
            match (args.len() <= 2, part(args.first()), part(args.get(1))) {
                (true, Some(re), Some(im)) => arena.alloc(Object::Complex(re, im)),
                _ => Err(malformed("complex() takes up to two numbers")),
            }
        }
        Global::Size => match args {
            [dims] => {
                let items = sequence(arena, *dims, "torch.Size")?.to_vec();
                arena.alloc(Object::Tuple(items))
            }
            _ => Err(arity("torch.Size", args.len())),
        },
        Global::Device => {
            let kind = args.first().and_then(|&v| arena.text(v));
            let text = match (kind, args.get(1).map(|&v| (v, arena.int(v)))) {
                (Some(kind), None | Some((Val::None, _))) => kind.to_owned(),
                (Some(kind), Some((_, Some(index)))) if args.len() == 2 => {
                    format!("{kind}:{index}")
                }
                _ => {
                    return Err(malformed(
                        "torch.device() takes a type and an optional index",
                    ));
                }
            };
            arena.alloc(Object::Device(text))
        }
        Global::RebuildTensor(kind) => torch::rebuild_tensor(arena, kind, args),
        Global::RebuildParameter | Global::RebuildParameterWithState | Global::Parameter => {
            // `Parameter(data, requires_grad)`: the data is the tensor; the rest is autograd and
            // Python state, which a reader has no use for.
            match args.first() {
                Some(&data) if matches!(arena.get(data), Some(Object::Tensor(_))) => Ok(data),
                _ => Err(malformed(
                    "nn.Parameter rebuilt from something that is not a tensor",
                )),
            }
        }
        Global::RebuildFromType => {
            // `_rebuild_from_type_v2(func, new_type, args, state)`: `func(*args)`, where `func`
            // must itself be a tensor rebuild and `new_type` a plain tensor class.
            let [func, new_type, inner_args, _state] = args else {
                return Err(arity("_rebuild_from_type_v2", args.len()));
            };
            let func = match arena.get(*func) {
                Some(Object::Global(
                    g @ (Global::RebuildTensor(_)
                    | Global::RebuildParameter
                    | Global::RebuildParameterWithState),
                )) => *g,
                _ => {
                    return Err(malformed(
                        "_rebuild_from_type_v2 of something not a tensor rebuild",
                    ));
                }
            };
            if !matches!(
                arena.get(*new_type),
                Some(Object::Global(Global::TensorClass | Global::Parameter))
            ) {
                return Err(malformed(
                    "_rebuild_from_type_v2 to a type that is not a tensor",
                ));
            }
            let inner = arena
                .tuple(*inner_args)
                .ok_or_else(|| malformed("_rebuild_from_type_v2 arguments are not a tuple"))?
                .to_vec();
            call(arena, func, &inner)
        }
        Global::TensorClass
        | Global::StorageType(_)
        | Global::UntypedStorage
        | Global::Dtype(_) => Err(malformed(format!("{} cannot be called", describe(global)))),
    }
}

/// `NEWOBJ`: `cls.__new__(cls, *args)`, allowed for the container classes only.
pub(crate) fn new_object(arena: &mut Arena, global: Global, args: Val) -> Result<Val, Error> {
    if arena.tuple(args).is_none() {
        return Err(malformed("NEWOBJ arguments are not a tuple"));
    }
    match global {
        Global::OrderedDict | Global::Counter => arena.alloc(Object::Dict(Vec::new())),
        Global::Set => arena.alloc(Object::Set(Vec::new())),
        other => Err(malformed(format!(
            "NEWOBJ of {}, which is not a container",
            describe(other)
        ))),
    }
}

/// `BUILD`: sets Python attributes, which a reader ignores (an `OrderedDict` state dict's
/// `_metadata`, a tensor's Python attributes). Anything else is refused.
pub(crate) fn build(arena: &Arena, target: Val, _state: Val) -> Result<(), Error> {
    match arena.get(target) {
        Some(Object::Dict(_) | Object::Set(_) | Object::Tensor(_)) => Ok(()),
        _ => Err(malformed(format!(
            "BUILD on a {}, which has no state to set",
            arena.type_name(target)
        ))),
    }
}

pub(crate) fn persistent_load(arena: &mut Arena, pid: Val) -> Result<Val, Error> {
    torch::persistent_load(arena, pid)
}

fn describe(global: Global) -> String {
    match global {
        Global::StorageType(d) => format!("torch.{}", d.storage_class.unwrap_or(d.name)),
        Global::Dtype(d) => format!("torch.{}", d.name),
        other => format!("{other:?}"),
    }
}

fn arity(what: &str, n: usize) -> Error {
    malformed(format!("{what} called with {n} arguments"))
}

fn sequence<'a>(arena: &'a Arena, val: Val, what: &str) -> Result<&'a [Val], Error> {
    match arena.get(val) {
        Some(Object::List(items) | Object::Tuple(items) | Object::Set(items)) => Ok(items),
        _ => Err(malformed(format!(
            "{what}() of a {}, not a sequence",
            arena.type_name(val)
        ))),
    }
}

/// `OrderedDict(x)`: from a dict, or from a sequence of `(key, value)` pairs.
fn dict_init(arena: &Arena, init: Val) -> Result<Vec<(Val, Val)>, Error> {
    if let Some(Object::Dict(entries)) = arena.get(init) {
        return Ok(entries.clone());
    }
    sequence(arena, init, "OrderedDict")?
        .iter()
        .map(|&pair| match arena.get(pair) {
            Some(Object::Tuple(kv) | Object::List(kv)) if kv.len() == 2 => Ok((kv[0], kv[1])),
            _ => Err(malformed("OrderedDict() item is not a (key, value) pair")),
        })
        .collect()
}

/// `text.encode("latin1")`: how protocol 2 carries `bytes`. Characters past U+00FF cannot be
/// Latin-1, and other encodings are not what any pickler writes.
fn latin1(arena: &Arena, text: Val, encoding: Val) -> Result<Vec<u8>, Error> {
    let (Some(text), Some(encoding)) = (arena.text(text), arena.text(encoding)) else {
        return Err(malformed("bytes encoded from something that is not text"));
    };
    if !matches!(encoding, "latin1" | "latin-1" | "iso-8859-1") {
        return Err(malformed(format!(
            "bytes encoded as '{}', expected latin1",
            encoding.escape_debug()
        )));
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| malformed("latin1 text past U+00FF")))
        .collect()
}
