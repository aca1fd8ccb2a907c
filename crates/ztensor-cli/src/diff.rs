//! `zt diff A B`: which tensors two files (of any formats) have in common and which differ.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Result;
use serde_json::json;
use ztensor::{Attributes, TensorInfo, TensorReader, Value};

use crate::output::Progress;
use crate::readers::total_bytes;

/// What differs between two tensors of the same name, in the order they are checked; bytes are
/// compared only when everything before them is equal.
#[derive(Debug, Default)]
pub struct Comparison {
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    /// Name and what differs: `format`, `shape`, `dtype`, `components`, `attributes`, `bytes`.
    pub different: Vec<(String, Vec<&'static str>)>,
    pub equal: Vec<String>,
    pub metadata_only_in_a: Vec<String>,
    pub metadata_only_in_b: Vec<String>,
    pub metadata_different: Vec<String>,
}

impl Comparison {
    pub fn tensors_equal(&self) -> bool {
        self.only_in_a.is_empty() && self.only_in_b.is_empty() && self.different.is_empty()
    }

    pub fn metadata_equal(&self) -> bool {
        self.metadata_only_in_a.is_empty()
            && self.metadata_only_in_b.is_empty()
            && self.metadata_different.is_empty()
    }
}

pub fn compare(
    a: &dyn TensorReader,
    b: &dyn TensorReader,
    progress: Progress,
) -> Result<Comparison> {
    let mut cmp = Comparison::default();
    let names_a: BTreeSet<&str> = a.names().into_iter().collect();
    let names_b: BTreeSet<&str> = b.names().into_iter().collect();
    cmp.only_in_a = names_a
        .difference(&names_b)
        .map(|s| s.to_string())
        .collect();
    cmp.only_in_b = names_b
        .difference(&names_a)
        .map(|s| s.to_string())
        .collect();

    let bar = progress.bytes(total_bytes(a), "comparing");
    // Read in A's file order, so that at least one of the files is read front to back.
    for name in a.names_in_file_order() {
        if !names_b.contains(name) {
            continue;
        }
        let (ia, ib) = (a.info(name)?, b.info(name)?);
        let mut what = structure_differences(ia, ib);
        if what.is_empty() {
            for role in ia.components.keys() {
                let (x, y) = (a.component(name, role)?, b.component(name, role)?);
                bar.inc(x.len() as u64);
                if *x != *y {
                    what.push("bytes");
                    break;
                }
            }
        }
        if what.is_empty() {
            cmp.equal.push(name.to_owned());
        } else {
            cmp.different.push((name.to_owned(), what));
        }
    }
    bar.finish_and_clear();
    cmp.different.sort();
    cmp.equal.sort();

    let (ma, mb) = (content_metadata(a), content_metadata(b));
    for (key, value) in &ma {
        match mb.get(key) {
            None => cmp.metadata_only_in_a.push(key.clone()),
            Some(other) if !same_value(other, value) => cmp.metadata_different.push(key.clone()),
            Some(_) => {}
        }
    }
    cmp.metadata_only_in_b = mb
        .keys()
        .filter(|k| !ma.contains_key(*k))
        .cloned()
        .collect();
    Ok(cmp)
}

/// File-level metadata without the attributes that describe how this one file is stored (the
/// base of a checkpoint delta, the original header of a restorable safetensors file): a file
/// and its conversion hold the same content whether or not they carry them.
fn content_metadata(reader: &dyn TensorReader) -> Attributes {
    reader
        .metadata()
        .iter()
        .filter(|(k, _)| {
            k.as_str() != ztensor::SAFETENSORS_HEADER_ATTRIBUTE
                && k.as_str() != ztensor::zt::BASE_ATTRIBUTE
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn structure_differences(a: &TensorInfo, b: &TensorInfo) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.format != b.format {
        what.push("format");
    }
    if a.shape != b.shape {
        what.push("shape");
    }
    let roles_a: Vec<&String> = a.components.keys().collect();
    let roles_b: Vec<&String> = b.components.keys().collect();
    if roles_a != roles_b {
        what.push("components");
    } else {
        let typed = |i: &TensorInfo| {
            i.components
                .values()
                .map(|c| (c.dtype, c.logical_type.clone()))
                .collect::<Vec<_>>()
        };
        if typed(a) != typed(b) {
            what.push("dtype");
        }
    }
    // A tensor without attributes and one with an empty map mean the same to a user.
    let empty = Attributes::new();
    if !same_attributes(
        a.attributes.as_ref().unwrap_or(&empty),
        b.attributes.as_ref().unwrap_or(&empty),
    ) {
        what.push("attributes");
    }
    what
}

fn same_attributes(a: &Attributes, b: &Attributes) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
}

/// Equality in which a value is always equal to itself: a NaN equals a NaN (`==` on floats
/// says otherwise, which would make a file differ from its own copy), while 0.0 and -0.0 differ.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| same_value(kx, ky) && same_value(vx, vy))
        }
        (Value::Tag(tx, x), Value::Tag(ty, y)) => tx == ty && same_value(x, y),
        _ => a == b,
    }
}

pub fn to_json(
    a: &dyn TensorReader,
    b: &dyn TensorReader,
    cmp: &Comparison,
    equal: bool,
) -> serde_json::Value {
    json!({
        "a": a.path().display().to_string(),
        "b": b.path().display().to_string(),
        "equal": equal,
        "only_in_a": cmp.only_in_a,
        "only_in_b": cmp.only_in_b,
        "different": cmp.different.iter().map(|(name, what)| json!({
            "name": name,
            "differences": what,
        })).collect::<Vec<_>>(),
        "equal_tensors": cmp.equal,
        "metadata": {
            "only_in_a": cmp.metadata_only_in_a,
            "only_in_b": cmp.metadata_only_in_b,
            "different": cmp.metadata_different,
        },
    })
}

pub fn print(
    out: &mut dyn Write,
    a: &dyn TensorReader,
    b: &dyn TensorReader,
    cmp: &Comparison,
    ignore_metadata: bool,
) -> std::io::Result<()> {
    let (pa, pb) = (a.path().display(), b.path().display());
    let list = |out: &mut dyn Write, title: String, names: &[String]| -> std::io::Result<()> {
        if !names.is_empty() {
            writeln!(out, "{title} ({}):", names.len())?;
            for n in names {
                writeln!(out, "  {n}")?;
            }
        }
        Ok(())
    };
    list(out, format!("only in {pa}"), &cmp.only_in_a)?;
    list(out, format!("only in {pb}"), &cmp.only_in_b)?;
    if !cmp.different.is_empty() {
        writeln!(out, "different ({}):", cmp.different.len())?;
        for (name, what) in &cmp.different {
            writeln!(out, "  {name}: {}", what.join(", "))?;
        }
    }
    if !ignore_metadata {
        list(
            out,
            format!("metadata only in {pa}"),
            &cmp.metadata_only_in_a,
        )?;
        list(
            out,
            format!("metadata only in {pb}"),
            &cmp.metadata_only_in_b,
        )?;
        list(
            out,
            "metadata different".to_owned(),
            &cmp.metadata_different,
        )?;
    }
    writeln!(
        out,
        "{} equal, {} different, {} only in {pa}, {} only in {pb}",
        cmp.equal.len(),
        cmp.different.len(),
        cmp.only_in_a.len(),
        cmp.only_in_b.len()
    )
}
