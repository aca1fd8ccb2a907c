//! HDF5 attributes as zt-core [`Value`]s: numbers, booleans and strings, scalars or arrays.

use hdf5::types::{FixedAscii, FixedUnicode, H5Type, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Attribute, Location};
use zt_core::{Attributes, Value};

use crate::MAX_ATTRIBUTE_ELEMENTS;
use crate::types::BoolByte;

/// The readable attributes of `location`; the others are added to `skipped` as
/// (`"<owner>@<attribute>"`, reason) so that nothing disappears silently.
pub fn read_attributes(
    location: &Location,
    owner: &str,
    skipped: &mut Vec<(String, String)>,
) -> hdf5::Result<Attributes> {
    let mut attributes = Attributes::new();
    for name in location.attr_names()? {
        match location.attr(&name).and_then(|attr| value(&attr)) {
            Ok(Ok(value)) => {
                attributes.insert(name, value);
            }
            Ok(Err(reason)) => skipped.push((format!("{owner}@{name}"), reason)),
            Err(e) => skipped.push((format!("{owner}@{name}"), format!("unreadable: {e}"))),
        }
    }
    Ok(attributes)
}

/// The attribute's value, `Ok(Err(reason))` when its type is not one zt-hdf5 converts.
fn value(attr: &Attribute) -> hdf5::Result<Result<Value, String>> {
    let space = attr.space()?;
    if space.is_null() {
        // h5py.Empty: a type but no data.
        return Ok(Ok(Value::Null));
    }
    // libhdf5's element count is computed without overflow checks: recompute it checked and
    // require agreement before a buffer of that many elements is allocated.
    let checked = space
        .shape()
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    let count = space.size();
    if checked != Some(count) {
        return Ok(Err(format!(
            "inconsistent element count for shape {:?}",
            space.shape()
        )));
    }
    if count > MAX_ATTRIBUTE_ELEMENTS {
        return Ok(Err(format!(
            "{count} elements, more than MAX_ATTRIBUTE_ELEMENTS ({MAX_ATTRIBUTE_ELEMENTS})"
        )));
    }
    let descriptor = attr.dtype()?.to_descriptor()?;
    let values: Vec<Value> = match &descriptor {
        TypeDescriptor::Integer(_) => map(attr, |v: i64| Value::Integer(v.into()))?,
        TypeDescriptor::Unsigned(_) => map(attr, |v: u64| Value::Integer(v.into()))?,
        TypeDescriptor::Float(_) => map(attr, |v: f64| Value::Float(v))?,
        TypeDescriptor::Boolean => map(attr, |v: BoolByte| Value::Bool(v.0 != 0))?,
        TypeDescriptor::VarLenUnicode => map(attr, |v: VarLenUnicode| text(v.as_bytes()))?,
        TypeDescriptor::VarLenAscii => map(attr, |v: VarLenAscii| text(v.as_bytes()))?,
        &TypeDescriptor::FixedAscii(len) => match fixed_ascii(attr, len)? {
            Some(values) => values,
            None => return Ok(Err(format!("{descriptor}: longer than {MAX_FIXED_STRING}"))),
        },
        &TypeDescriptor::FixedUnicode(len) => match fixed_unicode(attr, len)? {
            Some(values) => values,
            None => return Ok(Err(format!("{descriptor}: longer than {MAX_FIXED_STRING}"))),
        },
        other => return Ok(Err(format!("{other} attributes are not converted"))),
    };
    Ok(Ok(if space.ndim() == 0 {
        values.into_iter().next().unwrap_or(Value::Null)
    } else {
        // Multi-dimensional arrays are flattened in C order.
        Value::Array(values)
    }))
}

fn map<T: H5Type>(attr: &Attribute, convert: impl Fn(T) -> Value) -> hdf5::Result<Vec<Value>> {
    Ok(attr.read_raw::<T>()?.into_iter().map(convert).collect())
}

/// Strings become text; bytes that are not UTF-8 are replaced, never trusted (the
/// `as_str` of hdf5-metno's string types assumes valid UTF-8 without checking).
fn text(bytes: &[u8]) -> Value {
    Value::Text(String::from_utf8_lossy(bytes).into_owned())
}

/// Longest fixed-length string attribute converted.
const MAX_FIXED_STRING: usize = 4096;

/// Fixed-length strings are read into the smallest of a few buffer sizes that holds them
/// (libhdf5 converts between fixed lengths; hdf5-metno's types fix the length at compile time),
/// so a buffer is at most four times the attribute's size in the file.
macro_rules! fixed_strings {
    ($name:ident, $ty:ident) => {
        fn $name(attr: &Attribute, len: usize) -> hdf5::Result<Option<Vec<Value>>> {
            Ok(Some(match len {
                0..=16 => map(attr, |s: $ty<16>| text(s.as_bytes()))?,
                17..=64 => map(attr, |s: $ty<64>| text(s.as_bytes()))?,
                65..=256 => map(attr, |s: $ty<256>| text(s.as_bytes()))?,
                257..=1024 => map(attr, |s: $ty<1024>| text(s.as_bytes()))?,
                1025..=MAX_FIXED_STRING => {
                    map(attr, |s: $ty<MAX_FIXED_STRING>| text(s.as_bytes()))?
                }
                _ => return Ok(None),
            }))
        }
    };
}

fixed_strings!(fixed_ascii, FixedAscii);
fixed_strings!(fixed_unicode, FixedUnicode);
