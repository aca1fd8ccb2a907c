//! The restricted pickle machine: reads pickle opcodes (protocols 0-5) into an arena of plain
//! values, and can neither import nor call anything.
//!
//! A global (`GLOBAL`, `STACK_GLOBAL`, `INST`) is looked up in a fixed table ([`Global`]) and
//! becomes a tagged value; any name outside the table is an [`Error::ForbiddenGlobal`] on the
//! spot. `REDUCE`, `NEWOBJ`, `BUILD` and persistent ids only ever apply the few rules in
//! `globals.rs` to those tags. Mutable containers live in an arena and are referred to by index,
//! so memo references (`BINGET`, `DUP`) cost one stack slot each: a "billion laughs" pickle builds
//! a small graph, not a big tree, and the walk over the graph has its own budget.

use std::collections::HashMap;

use zt_core::Error;

use crate::Limits;
use crate::globals::{self, Global};
use crate::torch::{Storage, Tensor};

const FORMAT: &str = "pickle";

/// Index of an object in a [`Pickle`]'s arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjId(u32);

impl ObjId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One value on the machine's stack, in the memo, or in a container: small scalars inline,
/// everything else a reference into the arena (16 bytes either way).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Obj(ObjId),
}

/// A heap value of the unpickled graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A text string. Invalid UTF-8 (Python allows lone surrogates) is replaced by U+FFFD.
    Str(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// An integer outside `i64`: its value when it fits `i128`, else `None`.
    BigInt(Option<i128>),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    /// A `dict`, `OrderedDict` or `Counter`: entries in insertion order. A key set twice keeps
    /// both entries here; the walk keeps the last one, as Python's dict does.
    Dict(Vec<(Val, Val)>),
    /// A `set` or `frozenset`, in pickle order.
    Set(Vec<Val>),
    /// `complex(re, im)`.
    Complex(f64, f64),
    /// `torch.device(...)`, as its text form (`"cpu"`, `"cuda:0"`).
    Device(String),
    /// A global from the allowed table: a tag, never anything callable.
    Global(Global),
    /// A torch storage named by a persistent id (boxed: rare, and it keeps `Object` at 32 bytes).
    Storage(Box<Storage>),
    /// A tensor rebuilt by `torch._utils._rebuild_tensor*` (or a parameter wrapping one).
    Tensor(Box<Tensor>),
}

/// The unpickled object graph: an arena of objects and the root value.
#[derive(Debug, Clone)]
pub struct Pickle {
    pub(crate) objects: Vec<Object>,
    pub root: Val,
    /// Bytes from the protocol header to `STOP`, inclusive: what the walk's output is bounded by.
    pub(crate) input_len: u64,
}

impl Pickle {
    pub fn get(&self, id: ObjId) -> &Object {
        &self.objects[id.index()]
    }

    /// The object a value refers to, if it is a reference.
    pub fn object(&self, val: Val) -> Option<&Object> {
        match val {
            Val::Obj(id) => Some(self.get(id)),
            _ => None,
        }
    }

    /// Bytes of pickle this was unpickled from.
    pub fn input_len(&self) -> u64 {
        self.input_len
    }

    /// Number of arena objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Unpickles the pickle at the start of `bytes` with the default [`Limits`] (bytes after its
/// `STOP` are ignored, as Python's `pickle.loads` ignores them). The fuzz target's entry point.
pub fn unpickle(bytes: &[u8]) -> Result<Pickle, Error> {
    unpickle_at(bytes, 0, &Limits::default()).map(|(pickle, _)| pickle)
}

/// Unpickles the pickle starting at `start`; returns it and the offset just after its `STOP`.
/// Legacy `torch.save` files are several pickles in a row.
pub fn unpickle_at(bytes: &[u8], start: usize, limits: &Limits) -> Result<(Pickle, usize), Error> {
    // A legacy file's pickles are followed by the storages, so the pickle's own length is only
    // known at its STOP: the machine sees at most `max_pickle_len` bytes, and running out of them
    // means the pickle is too long.
    let start = start.min(bytes.len());
    let window = (bytes.len() - start) as u64;
    let clipped = window > limits.max_pickle_len;
    let end = start + window.min(limits.max_pickle_len) as usize;
    let mut machine = Machine {
        limits: *limits,
        data: &bytes[..end],
        pos: start,
        op_start: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        arena: Arena::new(*limits),
    };
    let root = match machine.run() {
        Err(Error::Truncated { .. }) if clipped => {
            return Err(Error::LimitExceeded {
                what: "pickle (no STOP within the limit)".into(),
                size: window,
                limit: limits.max_pickle_len,
            });
        }
        result => result?,
    };
    Ok((
        Pickle {
            objects: machine.arena.objects,
            root,
            input_len: (machine.pos - start) as u64,
        },
        machine.pos,
    ))
}

/// The objects being built, with the limits on their number and size.
#[derive(Debug)]
pub(crate) struct Arena {
    pub(crate) objects: Vec<Object>,
    /// Values placed in containers so far (a value in two containers counts twice).
    items: usize,
    limits: Limits,
}

impl Arena {
    fn new(limits: Limits) -> Arena {
        Arena {
            objects: Vec::new(),
            items: 0,
            limits,
        }
    }

    /// Accounts for `n` more values in containers.
    pub(crate) fn charge_items(&mut self, n: usize) -> Result<(), Error> {
        self.items = self.items.saturating_add(n);
        if self.items > self.limits.max_container_items {
            let max = self.limits.max_container_items;
            return Err(limit("values in pickle containers", self.items, max));
        }
        Ok(())
    }

    pub(crate) fn alloc(&mut self, object: Object) -> Result<Val, Error> {
        if self.objects.len() >= self.limits.max_objects {
            let max = self.limits.max_objects;
            return Err(limit("pickle objects", self.objects.len() + 1, max));
        }
        match &object {
            Object::Tuple(items) | Object::List(items) | Object::Set(items) => {
                self.charge_items(items.len())?
            }
            Object::Dict(entries) => self.charge_items(entries.len().saturating_mul(2))?,
            _ => {}
        }
        self.objects.push(object);
        Ok(Val::Obj(ObjId((self.objects.len() - 1) as u32)))
    }

    pub(crate) fn get(&self, val: Val) -> Option<&Object> {
        match val {
            Val::Obj(id) => self.objects.get(id.index()),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, val: Val) -> Option<&mut Object> {
        match val {
            Val::Obj(id) => self.objects.get_mut(id.index()),
            _ => None,
        }
    }

    /// The integer a value holds (`bool` counts, as in Python).
    pub(crate) fn int(&self, val: Val) -> Option<i128> {
        match val {
            Val::Int(i) => Some(i.into()),
            Val::Bool(b) => Some(b.into()),
            Val::Obj(_) => match self.get(val) {
                Some(Object::BigInt(i)) => *i,
                _ => None,
            },
            _ => None,
        }
    }

    /// Text from a `str` (or an ASCII `bytes`, as torch's `_maybe_decode_ascii` accepts).
    pub(crate) fn text(&self, val: Val) -> Option<&str> {
        match self.get(val)? {
            Object::Str(s) => Some(s),
            Object::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub(crate) fn tuple(&self, val: Val) -> Option<&[Val]> {
        match self.get(val)? {
            Object::Tuple(items) => Some(items),
            _ => None,
        }
    }

    pub(crate) fn type_name(&self, val: Val) -> &'static str {
        match val {
            Val::None => "None",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float",
            Val::Obj(_) => match self.get(val) {
                Some(Object::Str(_)) => "str",
                Some(Object::Bytes(_)) => "bytes",
                Some(Object::BigInt(_)) => "int",
                Some(Object::Tuple(_)) => "tuple",
                Some(Object::List(_)) => "list",
                Some(Object::Dict(_)) => "dict",
                Some(Object::Set(_)) => "set",
                Some(Object::Complex(..)) => "complex",
                Some(Object::Device(_)) => "torch.device",
                Some(Object::Global(_)) => "global",
                Some(Object::Storage(_)) => "storage",
                Some(Object::Tensor(_)) => "tensor",
                None => "dangling reference",
            },
        }
    }
}

pub(crate) fn limit(what: &str, size: usize, limit: usize) -> Error {
    Error::LimitExceeded {
        what: what.into(),
        size: size as u64,
        limit: limit as u64,
    }
}

struct Machine<'a> {
    limits: Limits,
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for error messages.
    op_start: usize,
    stack: Vec<Val>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Val>,
    arena: Arena,
}

/// Pickle opcodes, named as in CPython's `pickle.py`.
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const PERSID: u8 = b'P';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const STRING: u8 = b'S';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const UNICODE: u8 = b'V';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const INST: u8 = b'i';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const OBJ: u8 = b'o';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    // Protocol 2.
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const EXT1: u8 = 0x82;
    pub const EXT2: u8 = 0x83;
    pub const EXT4: u8 = 0x84;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    // Protocol 3.
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    // Protocol 4.
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const NEWOBJ_EX: u8 = 0x92;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
    // Protocol 5.
    pub const BYTEARRAY8: u8 = 0x96;
    pub const NEXT_BUFFER: u8 = 0x97;
    pub const READONLY_BUFFER: u8 = 0x98;
}

/// Highest pickle protocol this machine reads (Python 3.8+ writes 5 at most).
const HIGHEST_PROTOCOL: u8 = 5;

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<Val, Error> {
        let mut ops: u64 = 0;
        loop {
            ops += 1;
            if ops > self.limits.max_opcodes {
                return Err(Error::LimitExceeded {
                    what: "pickle opcodes".into(),
                    size: ops,
                    limit: self.limits.max_opcodes,
                });
            }
            self.op_start = self.pos;
            let code = self.u8("opcode")?;
            if code == op::STOP {
                return self.pop();
            }
            self.step(code)?;
        }
    }

    fn step(&mut self, code: u8) -> Result<(), Error> {
        match code {
            op::PROTO => {
                let version = self.u8("protocol version")?;
                if version > HIGHEST_PROTOCOL {
                    return Err(self.malformed(format!("unsupported pickle protocol {version}")));
                }
            }
            op::FRAME => {
                // A length hint for buffered readers; the opcodes inside are read as usual.
                let len = self.u64("frame length")?;
                if len > self.remaining() as u64 {
                    return Err(self.truncated("frame", len));
                }
            }
            op::MARK => {
                if self.marks.len() >= self.limits.max_mark_depth {
                    let max = self.limits.max_mark_depth;
                    return Err(limit("pickle MARK depth", self.marks.len() + 1, max));
                }
                self.marks.push(self.stack.len());
            }
            op::POP => {
                // Python pops the mark when the current stack frame is empty.
                if self.stack.len() > self.floor() {
                    self.stack.pop();
                } else {
                    self.pop_mark()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let top = self.top()?;
                self.push(top)?;
            }
            op::NONE => self.push(Val::None)?,
            op::NEWTRUE => self.push(Val::Bool(true))?,
            op::NEWFALSE => self.push(Val::Bool(false))?,
            op::BININT => {
                let v = i32::from_le_bytes(self.array("BININT")?);
                self.push(Val::Int(v.into()))?;
            }
            op::BININT1 => {
                let v = self.u8("BININT1")?;
                self.push(Val::Int(v.into()))?;
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(self.array("BININT2")?);
                self.push(Val::Int(v.into()))?;
            }
            op::LONG1 => {
                let n = self.u8("LONG1 length")? as u64;
                self.load_long(n)?;
            }
            op::LONG4 => {
                let n = i32::from_le_bytes(self.array("LONG4 length")?);
                if n < 0 {
                    return Err(self.malformed(format!("LONG4 with negative length {n}")));
                }
                self.load_long(n as u64)?;
            }
            op::INT => self.load_text_int()?,
            op::LONG => self.load_text_long()?,
            op::FLOAT => {
                let line = self.line("FLOAT")?;
                let v = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .ok_or_else(|| self.malformed("FLOAT is not a number"))?;
                self.push(Val::Float(v))?;
            }
            op::BINFLOAT => {
                // The one big-endian field of the pickle format.
                let v = f64::from_be_bytes(self.array("BINFLOAT")?);
                self.push(Val::Float(v))?;
            }
            op::SHORT_BINUNICODE => {
                let n = self.u8("SHORT_BINUNICODE length")? as u64;
                self.load_str(n)?;
            }
            op::BINUNICODE => {
                let n = self.u32("BINUNICODE length")? as u64;
                self.load_str(n)?;
            }
            op::BINUNICODE8 => {
                let n = self.u64("BINUNICODE8 length")?;
                self.load_str(n)?;
            }
            // Python 2 `str`: decoded as text, like `torch.load`'s default encoding="utf-8".
            op::SHORT_BINSTRING => {
                let n = self.u8("SHORT_BINSTRING length")? as u64;
                self.load_str(n)?;
            }
            op::BINSTRING => {
                let n = i32::from_le_bytes(self.array("BINSTRING length")?);
                if n < 0 {
                    return Err(self.malformed(format!("BINSTRING with negative length {n}")));
                }
                self.load_str(n as u64)?;
            }
            op::SHORT_BINBYTES => {
                let n = self.u8("SHORT_BINBYTES length")? as u64;
                self.load_bytes(n)?;
            }
            op::BINBYTES => {
                let n = self.u32("BINBYTES length")? as u64;
                self.load_bytes(n)?;
            }
            op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = self.u64("BINBYTES8 length")?;
                self.load_bytes(n)?;
            }
            op::STRING => {
                let line = self.line("STRING")?;
                let bytes = unquote_string(line).ok_or_else(|| {
                    self.malformed("STRING argument is not a quoted Python string")
                })?;
                let v = self.arena.alloc(Object::Str(lossy(bytes)))?;
                self.push(v)?;
            }
            op::UNICODE => {
                let line = self.line("UNICODE")?;
                let text = raw_unicode_unescape(line)
                    .ok_or_else(|| self.malformed("bad \\u escape in UNICODE"))?;
                let v = self.arena.alloc(Object::Str(text))?;
                self.push(v)?;
            }
            op::NEXT_BUFFER | op::READONLY_BUFFER => {
                return Err(Error::Unsupported(
                    "pickle protocol 5 out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER)".into(),
                ));
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                // The copyreg extension registry maps codes to arbitrary callables.
                return Err(Error::Unsupported(
                    "pickle extension-registry opcodes (EXT1/EXT2/EXT4)".into(),
                ));
            }
            op::EMPTY_TUPLE => self.push_new(Object::Tuple(Vec::new()))?,
            op::EMPTY_LIST => self.push_new(Object::List(Vec::new()))?,
            op::EMPTY_DICT => self.push_new(Object::Dict(Vec::new()))?,
            op::EMPTY_SET => self.push_new(Object::Set(Vec::new()))?,
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push_new(Object::Tuple(items))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = (code - op::TUPLE1 + 1) as usize;
                let items = self.pop_n(n)?;
                self.push_new(Object::Tuple(items))?;
            }
            op::LIST => {
                let items = self.pop_mark()?;
                self.push_new(Object::List(items))?;
            }
            op::DICT => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                self.push_new(Object::Dict(pairs))?;
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                self.push_new(Object::Set(items))?;
            }
            op::APPEND => {
                let item = self.pop()?;
                let list = self.top()?;
                self.extend_list(list, vec![item])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                let list = self.top()?;
                self.extend_list(list, items)?;
            }
            op::SETITEM => {
                let value = self.pop()?;
                let key = self.pop()?;
                let dict = self.top()?;
                self.extend_dict(dict, vec![(key, value)])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                let pairs = self.pairs(items)?;
                let dict = self.top()?;
                self.extend_dict(dict, pairs)?;
            }
            op::ADDITEMS => {
                let items = self.pop_mark()?;
                let set = self.top()?;
                self.arena.charge_items(items.len())?;
                match self.arena.get_mut(set) {
                    Some(Object::Set(existing)) => existing.extend(items),
                    _ => {
                        let found = self.arena.type_name(set);
                        return Err(self.malformed(format!("ADDITEMS on a {found}, not a set")));
                    }
                }
            }
            op::BINPUT => {
                let key = self.u8("BINPUT key")? as u32;
                self.memo_put(key)?;
            }
            op::LONG_BINPUT => {
                let key = self.u32("LONG_BINPUT key")?;
                self.memo_put(key)?;
            }
            op::PUT => {
                let key = self.text_memo_key("PUT")?;
                self.memo_put(key)?;
            }
            op::MEMOIZE => {
                let key = u32::try_from(self.memo.len())
                    .map_err(|_| limit("pickle memo", self.memo.len(), self.limits.max_memo_len))?;
                self.memo_put(key)?;
            }
            op::BINGET => {
                let key = self.u8("BINGET key")? as u32;
                self.memo_get(key)?;
            }
            op::LONG_BINGET => {
                let key = self.u32("LONG_BINGET key")?;
                self.memo_get(key)?;
            }
            op::GET => {
                let key = self.text_memo_key("GET")?;
                self.memo_get(key)?;
            }
            op::GLOBAL => {
                let module = self.line("GLOBAL module")?;
                let name = self.line("GLOBAL name")?;
                let global = globals::resolve(&lossy(module.to_vec()), &lossy(name.to_vec()))?;
                self.push_new(Object::Global(global))?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Some(module), Some(name)) = (self.arena.text(module), self.arena.text(name))
                else {
                    return Err(self.malformed("STACK_GLOBAL needs two strings"));
                };
                let global = globals::resolve(module, name)?;
                self.push_new(Object::Global(global))?;
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let args = self.arena.tuple(args).map(<[Val]>::to_vec).ok_or_else(|| {
                    self.malformed(format!(
                        "REDUCE arguments are a {}, not a tuple",
                        self.arena.type_name(args)
                    ))
                })?;
                let result = self.call(callable, &args)?;
                self.push(result)?;
            }
            op::INST => {
                let module = self.line("INST module")?;
                let name = self.line("INST name")?;
                let global = globals::resolve(&lossy(module.to_vec()), &lossy(name.to_vec()))?;
                let args = self.pop_mark()?;
                let callable = self.arena.alloc(Object::Global(global))?;
                let result = self.call(callable, &args)?;
                self.push(result)?;
            }
            op::OBJ => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err(self.malformed("OBJ without a class"));
                }
                let callable = items.remove(0);
                let result = self.call(callable, &items)?;
                self.push(result)?;
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let class = self.pop()?;
                let result = self.new_object(class, args)?;
                self.push(result)?;
            }
            op::NEWOBJ_EX => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let result = self.new_object(class, args)?;
                self.push(result)?;
            }
            op::BUILD => {
                let state = self.pop()?;
                let target = self.top()?;
                globals::build(&self.arena, target, state).map_err(|e| self.at(e))?;
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let result =
                    globals::persistent_load(&mut self.arena, pid).map_err(|e| self.at(e))?;
                self.push(result)?;
            }
            op::PERSID => {
                let line = self.line("PERSID")?;
                let pid = self.arena.alloc(Object::Str(lossy(line.to_vec())))?;
                let result =
                    globals::persistent_load(&mut self.arena, pid).map_err(|e| self.at(e))?;
                self.push(result)?;
            }
            other => {
                return Err(self.malformed(format!("unknown opcode 0x{other:02x}")));
            }
        }
        Ok(())
    }

    fn call(&mut self, callable: Val, args: &[Val]) -> Result<Val, Error> {
        let global = match self.arena.get(callable) {
            Some(Object::Global(g)) => *g,
            _ => {
                let found = self.arena.type_name(callable);
                return Err(self.malformed(format!("cannot call a {found}")));
            }
        };
        globals::call(&mut self.arena, global, args).map_err(|e| self.at(e))
    }

    fn new_object(&mut self, class: Val, args: Val) -> Result<Val, Error> {
        let global = match self.arena.get(class) {
            Some(Object::Global(g)) => *g,
            _ => {
                let found = self.arena.type_name(class);
                return Err(self.malformed(format!("NEWOBJ on a {found}, not a class")));
            }
        };
        globals::new_object(&mut self.arena, global, args).map_err(|e| self.at(e))
    }

    /// Adds the opcode's offset to a malformed-pickle error raised by the global rules.
    fn at(&self, e: Error) -> Error {
        match e {
            Error::Malformed { reason, .. } => self.malformed(reason),
            e => e,
        }
    }

    // ----- stack -----

    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, v: Val) -> Result<(), Error> {
        if self.stack.len() >= self.limits.max_stack_len {
            let max = self.limits.max_stack_len;
            return Err(limit("pickle stack", self.stack.len() + 1, max));
        }
        self.stack.push(v);
        Ok(())
    }

    fn push_new(&mut self, object: Object) -> Result<(), Error> {
        let v = self.arena.alloc(object)?;
        self.push(v)
    }

    fn pop(&mut self) -> Result<Val, Error> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("stack underflow"));
        }
        Ok(self.stack.pop().expect("length checked"))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Val>, Error> {
        if self.stack.len() < self.floor() + n {
            return Err(self.malformed("stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn top(&self) -> Result<Val, Error> {
        if self.stack.len() <= self.floor() {
            return Err(self.malformed("stack underflow"));
        }
        Ok(*self.stack.last().expect("length checked"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Val>, Error> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed("MARK expected but none is open"))?;
        Ok(self.stack.split_off(mark))
    }

    fn pairs(&self, items: Vec<Val>) -> Result<Vec<(Val, Val)>, Error> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("odd number of items for a dict"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok(pairs)
    }

    fn extend_list(&mut self, list: Val, items: Vec<Val>) -> Result<(), Error> {
        self.arena.charge_items(items.len())?;
        match self.arena.get_mut(list) {
            Some(Object::List(existing)) => {
                existing.extend(items);
                Ok(())
            }
            _ => {
                let found = self.arena.type_name(list);
                Err(self.malformed(format!("APPEND to a {found}, not a list")))
            }
        }
    }

    fn extend_dict(&mut self, dict: Val, pairs: Vec<(Val, Val)>) -> Result<(), Error> {
        self.arena.charge_items(pairs.len().saturating_mul(2))?;
        match self.arena.get_mut(dict) {
            Some(Object::Dict(existing)) => {
                existing.extend(pairs);
                Ok(())
            }
            _ => {
                let found = self.arena.type_name(dict);
                Err(self.malformed(format!("SETITEM on a {found}, not a dict")))
            }
        }
    }

    // ----- memo -----

    fn memo_put(&mut self, key: u32) -> Result<(), Error> {
        let top = self.top()?;
        if self.memo.len() >= self.limits.max_memo_len && !self.memo.contains_key(&key) {
            let max = self.limits.max_memo_len;
            return Err(limit("pickle memo", self.memo.len() + 1, max));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), Error> {
        let v = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.malformed(format!("memo key {key} was never stored")))?;
        self.push(v)
    }

    fn text_memo_key(&mut self, what: &str) -> Result<u32, Error> {
        let line = self.line(what)?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| self.malformed(format!("{what} key is not a memo index")))
    }

    // ----- scalars -----

    fn load_long(&mut self, n: u64) -> Result<(), Error> {
        if n > self.limits.max_long_bytes as u64 {
            return Err(Error::LimitExceeded {
                what: "pickle LONG".into(),
                size: n,
                limit: self.limits.max_long_bytes as u64,
            });
        }
        let bytes = self.take(n, "LONG")?;
        let v = decode_long(bytes);
        self.push_int(v)
    }

    fn push_int(&mut self, v: Option<i128>) -> Result<(), Error> {
        match v.map(i64::try_from) {
            Some(Ok(small)) => self.push(Val::Int(small)),
            _ => self.push_new(Object::BigInt(v)),
        }
    }

    /// Protocol 0 `INT`: a decimal line; `00`/`01` are Python 2's False/True.
    fn load_text_int(&mut self) -> Result<(), Error> {
        let line = self.line("INT")?;
        match line {
            b"00" => return self.push(Val::Bool(false)),
            b"01" => return self.push(Val::Bool(true)),
            _ => {}
        }
        let v = parse_decimal(line).ok_or_else(|| self.malformed("INT is not a number"))?;
        self.push_int(v)
    }

    /// Protocol 0 `LONG`: a decimal line with an optional trailing `L`.
    fn load_text_long(&mut self) -> Result<(), Error> {
        let line = self.line("LONG")?;
        let digits = line.strip_suffix(b"L").unwrap_or(line);
        let v = parse_decimal(digits).ok_or_else(|| self.malformed("LONG is not a number"))?;
        self.push_int(v)
    }

    fn load_str(&mut self, n: u64) -> Result<(), Error> {
        let bytes = self.take(n, "string")?;
        self.push_new(Object::Str(lossy(bytes.to_vec())))
    }

    fn load_bytes(&mut self, n: u64) -> Result<(), Error> {
        let bytes = self.take(n, "bytes")?;
        self.push_new(Object::Bytes(bytes.to_vec()))
    }

    // ----- input -----

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// `n` bytes, checked against what is left before anything is allocated for them.
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], Error> {
        if n > self.remaining() as u64 {
            return Err(self.truncated(what, n));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.data[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Error> {
        Ok(self
            .take(N as u64, what)?
            .try_into()
            .expect("length checked"))
    }

    fn u8(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, Error> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A newline-terminated argument of a protocol 0 opcode, without the newline (and without a
    /// `\r` before it).
    fn line(&mut self, what: &str) -> Result<&'a [u8], Error> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.truncated(&format!("{what} line"), rest.len() as u64 + 1));
        };
        self.pos += end + 1;
        let line = &rest[..end];
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn truncated(&self, what: &str, needed: u64) -> Error {
        Error::Truncated {
            what: format!("pickle {what} at byte {}", self.op_start),
            needed,
            available: self.remaining() as u64,
        }
    }

    fn malformed(&self, reason: impl std::fmt::Display) -> Error {
        Error::malformed(
            FORMAT,
            format!("{reason} (opcode at byte {})", self.op_start),
        )
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Python's `decode_long`: little-endian two's complement. `None` when it does not fit `i128`.
pub(crate) fn decode_long(bytes: &[u8]) -> Option<i128> {
    let Some(&last) = bytes.last() else {
        return Some(0);
    };
    let negative = last & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    // Bytes past the 16th must all be sign extension for the value to fit.
    if bytes.len() > 16 {
        let (low, high) = bytes.split_at(16);
        let sign_ok = high.iter().all(|&b| b == fill) && ((low[15] & 0x80 != 0) == negative);
        if !sign_ok {
            return None;
        }
        return decode_long(low);
    }
    let mut buf = [fill; 16];
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(i128::from_le_bytes(buf))
}

/// A decimal integer line (`-12`, `+7`, ` 42 `). `Some(None)` for a valid number that does not
/// fit `i128`, `None` for text that is not a number.
fn parse_decimal(line: &[u8]) -> Option<Option<i128>> {
    let text = std::str::from_utf8(line).ok()?.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<i128>().ok())
}

/// Protocol 0 `STRING`: a Python `repr` of a byte string, with matching quotes and backslash
/// escapes (`\\ \' \" \n \t \r \a \b \f \v \xhh \ooo`).
fn unquote_string(line: &[u8]) -> Option<Vec<u8>> {
    let (&quote, rest) = line.split_first()?;
    if !(quote == b'\'' || quote == b'"') || rest.last() != Some(&quote) {
        return None;
    }
    let body = &rest[..rest.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let &e = body.get(i)?;
        i += 1;
        match e {
            b'\\' | b'\'' | b'"' => out.push(e),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'\n' => {}
            b'x' => {
                let hex = body.get(i..i + 2)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Protocol 0 `UNICODE`: Python's `raw-unicode-escape` codec: bytes are Latin-1 except the
/// escapes `\uXXXX` and `\UXXXXXXXX`.
fn raw_unicode_unescape(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        // An escape needs an odd run of backslashes before the 'u'; an even run is literal.
        if b == b'\\' && matches!(line.get(i + 1), Some(b'u' | b'U')) {
            let width = if line[i + 1] == b'u' { 4 } else { 8 };
            let hex = line.get(i + 2..i + 2 + width)?;
            let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            i += 2 + width;
        } else if b == b'\\' && line.get(i + 1) == Some(&b'\\') {
            out.push_str("\\\\");
            i += 2;
        } else {
            out.push(char::from(b));
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_decode_as_python_does() {
        assert_eq!(decode_long(&[]), Some(0));
        assert_eq!(decode_long(&[0xff]), Some(-1));
        assert_eq!(decode_long(&[0x00, 0x80]), Some(-32768));
        assert_eq!(decode_long(&[0xff, 0x00]), Some(255));
        let mut big = vec![0u8; 20];
        big[19] = 1;
        assert_eq!(decode_long(&big), None);
        let mut minus_one = vec![0xffu8; 20];
        assert_eq!(decode_long(&minus_one), Some(-1));
        minus_one[3] = 0;
        assert_eq!(decode_long(&minus_one), Some(!0xff00_0000i128));
    }

    #[test]
    fn protocol_0_strings() {
        assert_eq!(
            unquote_string(br"'a\'b\\c\x41\n\101'").unwrap(),
            b"a'b\\cA\nA".to_vec()
        );
        assert!(unquote_string(b"'abc").is_none());
        assert_eq!(raw_unicode_unescape(br"h\u00e9\U0001F642").unwrap(), "hé🙂");
        assert!(raw_unicode_unescape(br"\u12").is_none());
    }
}
