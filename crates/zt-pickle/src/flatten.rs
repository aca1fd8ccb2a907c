//! The walk from an unpickled object to named tensors and metadata.
//!
//! Names are the path of keys and list indices joined by `.` (`model.layers.0.weight`), in the
//! order the pickle lists them (dict insertion order). A tensor at the root is named `""`.
//! Scalars (int, float, str, bool) and sequences made only of scalars become metadata under their
//! dotted name, as do `torch.dtype` and `torch.device` (their text form); `None`, bytes, storages
//! and other leaves are ignored.
//!
//! The object is a graph: the same object can be reached twice (tied weights: two names, one
//! storage) and a container can contain itself. The walk skips an edge back to a container it is
//! inside (Python's repr prints `[...]` there), and its total work is bounded by
//! [`MAX_WALK_STEPS`](crate::MAX_WALK_STEPS) and [`MAX_WALK_BYTES`](crate::MAX_WALK_BYTES), so a
//! graph that doubles at every level (billion laughs) is an error rather than a hang.

use std::collections::{HashMap, HashSet};

use zt_core::{Attributes, Error, Value};

use crate::globals::Global;
use crate::pickle::{Object, Pickle, Val};
use crate::torch::Tensor;
use crate::{Limits, WALK_OUTPUT_SLACK};

/// What a checkpoint holds: its tensors in pickle order and its scalar metadata.
#[derive(Debug, Default)]
pub struct Flattened<'p> {
    pub tensors: Vec<(String, &'p Tensor)>,
    pub metadata: Attributes,
}

/// Walks the object graph of a pickle with the default [`Limits`].
pub fn flatten(pickle: &Pickle) -> Result<Flattened<'_>, Error> {
    flatten_with(pickle, &Limits::default())
}

/// Walks the object graph of a pickle.
pub fn flatten_with<'p>(pickle: &'p Pickle, limits: &Limits) -> Result<Flattened<'p>, Error> {
    let mut walk = Walk {
        limits: *limits,
        pickle,
        out: Flattened::default(),
        inside: vec![false; pickle.len()],
        seen_names: HashSet::new(),
        steps: 0,
        name_bytes: 0,
        metadata_bytes: 0,
        output_bytes: 0,
        max_output_bytes: pickle
            .input_len()
            .saturating_mul(limits.max_walk_output_per_byte)
            .saturating_add(WALK_OUTPUT_SLACK),
    };
    walk.visit(pickle.root, &mut String::new(), true, 0)?;
    Ok(walk.out)
}

struct Walk<'p> {
    limits: Limits,
    pickle: &'p Pickle,
    out: Flattened<'p>,
    /// Containers on the current path (cycle detection), by arena index.
    inside: Vec<bool>,
    /// Tensor names already used, to report duplicates.
    seen_names: HashSet<String>,
    steps: u64,
    /// Bytes of keys rendered and names built so far.
    name_bytes: u64,
    metadata_bytes: u64,
    /// Reader state the output will cost (estimated), and its budget: a multiple of the pickle's
    /// size (`Limits::max_walk_output_per_byte`) plus [`WALK_OUTPUT_SLACK`].
    output_bytes: u64,
    max_output_bytes: u64,
}

/// Estimated reader state per tensor name, besides the name's copies: the `TensorInfo` (its
/// component map allocates a whole B-tree node) in the reader's entry, and the map slots that
/// find it. Measured at ~2.1 KiB per name.
const TENSOR_COST: u64 = 2048;
/// Copies of a tensor's name kept (walk output, duplicate check, `TensorInfo`, name index).
const TENSOR_NAME_COPIES: u64 = 4;
/// Estimated cost of one metadata entry besides its name and text: a B-tree map slot and a
/// `Value` (measured at ~100 bytes with a short name).
const METADATA_ENTRY_COST: u64 = 96;

impl<'p> Walk<'p> {
    fn step(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > self.limits.max_walk_steps {
            return Err(Error::LimitExceeded {
                what: "values visited in the pickle (a graph that repeats itself?)".into(),
                size: self.steps,
                limit: self.limits.max_walk_steps,
            });
        }
        Ok(())
    }

    /// Charges output the reader will keep against the budget that scales with the pickle.
    fn charge_output(&mut self, n: u64) -> Result<(), Error> {
        self.output_bytes = self.output_bytes.saturating_add(n);
        if self.output_bytes > self.max_output_bytes {
            return Err(Error::LimitExceeded {
                what: format!(
                    "memory for the tensors and metadata a {}-byte pickle names (the same \
                     objects under many names?)",
                    self.pickle.input_len()
                ),
                size: self.output_bytes,
                limit: self.max_output_bytes,
            });
        }
        Ok(())
    }

    /// Names cost their length: a graph that reaches one long key many times is bounded too.
    fn charge_name_bytes(&mut self, n: usize) -> Result<(), Error> {
        self.name_bytes += n as u64;
        if self.name_bytes > self.limits.max_walk_bytes {
            return Err(Error::LimitExceeded {
                what: "bytes of names built while walking the pickle".into(),
                size: self.name_bytes,
                limit: self.limits.max_walk_bytes,
            });
        }
        Ok(())
    }

    fn visit(
        &mut self,
        val: Val,
        path: &mut String,
        root: bool,
        depth: usize,
    ) -> Result<(), Error> {
        self.step()?;
        if depth > self.limits.max_nesting {
            return Err(Error::LimitExceeded {
                what: "nesting depth of the pickled object".into(),
                size: depth as u64,
                limit: self.limits.max_nesting as u64,
            });
        }
        let pickle = self.pickle;
        let Val::Obj(id) = val else {
            if let Some(value) = scalar(pickle, val) {
                self.metadata(path, value)?;
            }
            return Ok(());
        };
        match pickle.get(id) {
            Object::Tensor(t) => self.tensor(path, t),
            Object::Dict(entries) => self.enter(id.index(), |walk| {
                let mut keys = Vec::with_capacity(entries.len());
                for &(k, _) in entries {
                    let key = key_text(pickle, k);
                    walk.charge_name_bytes(key.len())?;
                    keys.push(key);
                }
                // A key set twice keeps its first position and its last value, as in Python.
                let mut last = HashMap::with_capacity(keys.len());
                for (i, k) in keys.iter().enumerate() {
                    last.insert(k.as_str(), i);
                }
                let mut done = HashSet::with_capacity(keys.len());
                for key in &keys {
                    if done.insert(key.as_str()) {
                        let value = entries[last[key.as_str()]].1;
                        walk.child(path, root, key, value, depth)?;
                    }
                }
                Ok(())
            }),
            Object::List(items) | Object::Tuple(items) | Object::Set(items) => {
                if items.iter().all(|&v| is_scalar(pickle, v)) {
                    // Charged before anything is copied: a list of many references to one
                    // long string must fail here, not after cloning it each time.
                    let cost = items.iter().map(|&v| scalar_bytes(pickle, v)).sum::<u64>();
                    self.charge_metadata(path, cost)?;
                    let array = items.iter().filter_map(|&v| scalar(pickle, v)).collect();
                    self.out
                        .metadata
                        .insert(path.to_owned(), Value::Array(array));
                    return Ok(());
                }
                self.enter(id.index(), |walk| {
                    for (i, &item) in items.iter().enumerate() {
                        walk.child(path, root, &i.to_string(), item, depth)?;
                    }
                    Ok(())
                })
            }
            Object::Device(text) => self.metadata(path, Value::Text(text.clone())),
            Object::Global(Global::Dtype(d)) => {
                self.metadata(path, Value::Text(format!("torch.{}", d.name)))
            }
            other => {
                if let Some(value) = scalar_object(other) {
                    self.metadata(path, value)?;
                }
                Ok(())
            }
        }
    }

    /// Visits a container's children unless the container is already on the path.
    fn enter(
        &mut self,
        index: usize,
        children: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.inside[index] {
            return Ok(());
        }
        self.inside[index] = true;
        let result = children(self);
        self.inside[index] = false;
        result
    }

    fn child(
        &mut self,
        path: &mut String,
        root: bool,
        segment: &str,
        val: Val,
        depth: usize,
    ) -> Result<(), Error> {
        let before = path.len();
        if !root {
            path.push('.');
        }
        path.push_str(segment);
        self.charge_name_bytes(path.len())?;
        if path.len() > self.limits.max_name_len {
            return Err(Error::LimitExceeded {
                what: format!("name starting '{}'", truncate(path, 64)),
                size: path.len() as u64,
                limit: self.limits.max_name_len as u64,
            });
        }
        let result = self.visit(val, path, false, depth + 1);
        path.truncate(before);
        result
    }

    fn tensor(&mut self, path: &str, tensor: &'p Tensor) -> Result<(), Error> {
        self.charge_output(TENSOR_COST + TENSOR_NAME_COPIES * path.len() as u64)?;
        if !self.seen_names.insert(path.to_owned()) {
            return Err(Error::DuplicateName(path.to_owned()));
        }
        self.out.tensors.push((path.to_owned(), tensor));
        Ok(())
    }

    fn charge_metadata(&mut self, path: &str, value_bytes: u64) -> Result<(), Error> {
        self.charge_output(METADATA_ENTRY_COST + path.len() as u64 + value_bytes)?;
        self.metadata_bytes += path.len() as u64 + value_bytes;
        if self.metadata_bytes > self.limits.max_metadata_bytes {
            return Err(Error::LimitExceeded {
                what: "checkpoint metadata (names and text)".into(),
                size: self.metadata_bytes,
                limit: self.limits.max_metadata_bytes,
            });
        }
        Ok(())
    }

    fn metadata(&mut self, path: &str, value: Value) -> Result<(), Error> {
        let cost = match &value {
            Value::Text(s) => s.len() as u64,
            _ => 8,
        };
        self.charge_metadata(path, cost)?;
        // A name reached twice by different paths: the later value wins, as a later key does.
        self.out.metadata.insert(path.to_owned(), value);
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether a value is a scalar that becomes metadata (int, float, str, bool).
fn is_scalar(pickle: &Pickle, val: Val) -> bool {
    match val {
        Val::Bool(_) | Val::Int(_) | Val::Float(_) => true,
        Val::None => false,
        Val::Obj(id) => matches!(pickle.get(id), Object::Str(_) | Object::BigInt(Some(_))),
    }
}

/// Bytes a scalar costs as metadata: its text, or a word.
fn scalar_bytes(pickle: &Pickle, val: Val) -> u64 {
    match pickle.object(val) {
        Some(Object::Str(s)) => s.len() as u64,
        _ => 8,
    }
}

/// A scalar (int, float, str, bool) as a metadata value.
fn scalar(pickle: &Pickle, val: Val) -> Option<Value> {
    match val {
        Val::Bool(b) => Some(Value::Bool(b)),
        Val::Int(i) => Some(Value::Integer(i.into())),
        Val::Float(f) => Some(Value::Float(f)),
        Val::None => None,
        Val::Obj(id) => scalar_object(pickle.get(id)),
    }
}

fn scalar_object(object: &Object) -> Option<Value> {
    match object {
        Object::Str(s) => Some(Value::Text(s.clone())),
        Object::BigInt(Some(i)) => Some(Value::Integer(*i)),
        _ => None,
    }
}

/// A dict key as a name segment: text as is, numbers in decimal, `True`/`False`/`None` as
/// Python prints them, tuples as `(a, b)`.
fn key_text(pickle: &Pickle, key: Val) -> String {
    match key {
        Val::None => "None".into(),
        Val::Bool(true) => "True".into(),
        Val::Bool(false) => "False".into(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => format!("{f:?}"),
        Val::Obj(id) => match pickle.get(id) {
            Object::Str(s) => s.clone(),
            Object::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Object::BigInt(Some(i)) => i.to_string(),
            Object::Tuple(items) => {
                // One level only: a key is never a deep structure in practice, and recursion
                // here would need its own bound.
                let parts: Vec<String> = items
                    .iter()
                    .map(|&v| match v {
                        Val::Obj(_) => match pickle.object(v) {
                            Some(Object::Str(s)) => s.clone(),
                            _ => "...".into(),
                        },
                        other => key_text(pickle, other),
                    })
                    .collect();
                format!("({})", parts.join(", "))
            }
            _ => "<object>".into(),
        },
    }
}
