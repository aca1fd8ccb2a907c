//! Attribute values (`ztensor::Value`, CBOR's data model) to and from Python objects.

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use ztensor::{Attributes, Value};

/// Nesting deeper than this is refused when converting from Python (a self-referencing list
/// would otherwise recurse forever).
const MAX_DEPTH: usize = 128;

pub fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_py_any(py)?,
        Value::Integer(i) => i.into_py_any(py)?,
        Value::Float(f) => f.into_py_any(py)?,
        Value::Text(s) => s.into_py_any(py)?,
        Value::Bytes(b) => PyBytes::new(py, b).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Map(entries) => {
            // A dict when every key can be one (text, integers, ...); CBOR also allows maps and
            // arrays as keys, which Python cannot hash: those maps become lists of pairs.
            let dict = PyDict::new(py);
            let mut pairs = Vec::with_capacity(entries.len());
            let mut hashable = true;
            for (k, v) in entries {
                let (k, v) = (to_py(py, k)?, to_py(py, v)?);
                if hashable && dict.set_item(&k, &v).is_err() {
                    hashable = false;
                }
                pairs.push(PyTuple::new(py, [k, v])?);
            }
            if hashable {
                dict.into_any().unbind()
            } else {
                PyList::new(py, pairs)?.into_any().unbind()
            }
        }
        // The tag says how to interpret the value; Python gets the value itself.
        Value::Tag(_, inner) => to_py(py, inner)?,
    })
}

pub fn attributes_to_py(py: Python<'_>, attributes: &Attributes) -> PyResult<Py<PyAny>> {
    let dict = PyDict::new(py);
    for (k, v) in attributes {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict.into_any().unbind())
}

pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    from_py_depth(obj, 0)
}

fn from_py_depth(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyTypeError::new_err(format!(
            "attribute value nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        let i: i128 = obj
            .extract()
            .map_err(|_| PyTypeError::new_err("integer attribute does not fit in -2^64..2^64"))?;
        return Ok(Value::Integer(i));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Text(s.to_str()?.to_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Bytes(b.to_vec()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            entries.push((from_py_depth(&k, depth + 1)?, from_py_depth(&v, depth + 1)?));
        }
        return Ok(Value::Map(entries));
    }
    if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(from_py_depth(&item?, depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "cannot store a {} as an attribute (use None, bool, int, float, str, bytes, list or dict)",
        obj.get_type().name()?
    )))
}

/// A `dict[str, Any]` as attributes.
pub fn attributes_from_py(dict: &Bound<'_, PyDict>) -> PyResult<Attributes> {
    let mut attributes = Attributes::new();
    for (k, v) in dict.iter() {
        let key: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("attribute keys must be str"))?;
        attributes.insert(key, from_py(&v)?);
    }
    Ok(attributes)
}
