//! `zt info` / `zt ls`: what is in a tensor file.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde_json::json;
use ztensor::{Component, FileFormat, TensorInfo, TensorReader, ZtReader};

use crate::output::{self, attributes_json, ratio, ratio_text, size, value_text};

/// An open file with what `info` says about it beyond the reader.
pub struct Opened {
    pub reader: Box<dyn TensorReader>,
    pub format: FileFormat,
    pub file_size: u64,
    /// A `ZTEN0001` file.
    pub legacy: bool,
    /// Bytes of an unfinished append after the last footer of a `.zt` file.
    pub unfinished_tail: u64,
}

/// Opens any supported file, keeping the `.zt` details the generic reader does not show.
pub fn open(path: &Path) -> Result<Opened> {
    let format = ztensor::detect(path)?;
    let file_size = std::fs::metadata(path)
        .map_err(|e| ztensor::Error::from(e).in_file(path))?
        .len();
    let (reader, legacy, unfinished_tail): (Box<dyn TensorReader>, _, _) = match format {
        FileFormat::Zt => {
            let reader = ZtReader::open(path)?;
            let legacy = reader.variant() == ztensor::zt::Variant::Legacy;
            let tail = reader.unfinished_tail();
            (Box::new(reader), legacy, tail)
        }
        other => (ztensor::open_as(path, other)?, false, 0),
    };
    Ok(Opened {
        reader,
        format,
        file_size,
        legacy,
        unfinished_tail,
    })
}

/// Sizes of one tensor: stored (on disk, compressed) and decoded, each `None` when some
/// component's size is not known without reading it.
struct Sizes {
    stored: Option<u64>,
    decoded: Option<u64>,
}

fn component_decoded(info: &TensorInfo, role: &str, c: &Component) -> Option<u64> {
    c.decoded_len.or_else(|| {
        (role == "data")
            .then(|| c.byte_len_for(&info.shape).ok().flatten())
            .flatten()
    })
}

fn sizes(info: &TensorInfo) -> Sizes {
    let mut stored = Some(0u64);
    let mut decoded = Some(0u64);
    for (role, c) in &info.components {
        stored = stored.zip(c.stored_len()).map(|(a, b)| a + b);
        decoded = decoded
            .zip(component_decoded(info, role, c))
            .map(|(a, b)| a + b);
    }
    Sizes { stored, decoded }
}

/// `f32`, or `f32:complex64` when a logical type gives the storage dtype a meaning.
fn dtype_text(c: &Component) -> String {
    match &c.logical_type {
        Some(t) => format!("{}:{t}", c.dtype),
        None => c.dtype.to_string(),
    }
}

/// The tensor's dtypes, its primary component's first, without repeats.
fn dtypes(info: &TensorInfo) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let primary = info.primary_component().map(|(_, c)| dtype_text(c));
    for text in primary
        .into_iter()
        .chain(info.components.values().map(dtype_text))
    {
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

fn encodings(info: &TensorInfo) -> Vec<String> {
    info.components
        .values()
        .map(|c| c.encoding.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The JSON document of one file (its shape is documented in the crate docs).
pub fn file_json(path: &Path, opened: &Opened) -> Result<serde_json::Value> {
    let reader = opened.reader.as_ref();
    let mut tensors = Vec::new();
    let (mut stored_total, mut decoded_total) = (Some(0u64), Some(0u64));
    for name in reader.names() {
        let info = reader.info(name)?;
        let s = sizes(info);
        stored_total = stored_total.zip(s.stored).map(|(a, b)| a + b);
        decoded_total = decoded_total.zip(s.decoded).map(|(a, b)| a + b);
        let components: serde_json::Map<String, serde_json::Value> = info
            .components
            .iter()
            .map(|(role, c)| {
                (
                    role.clone(),
                    json!({
                        "dtype": c.dtype.to_string(),
                        "logical_type": c.logical_type.as_ref().map(|t| t.to_string()),
                        "encoding": c.encoding.to_string(),
                        "offset": c.location.map(|l| l.offset),
                        "stored_bytes": c.stored_len(),
                        "decoded_bytes": component_decoded(info, role, c),
                        "digest": c.digest.as_ref().map(|d| d.to_string()),
                    }),
                )
            })
            .collect();
        tensors.push(json!({
            "name": name,
            "format": info.format.name(),
            "shape": info.shape.dims(),
            "dtypes": dtypes(info),
            "encodings": encodings(info),
            "stored_bytes": s.stored,
            "decoded_bytes": s.decoded,
            "ratio": ratio(s.decoded, s.stored),
            "components": components,
            "attributes": info.attributes.as_ref().map(attributes_json),
        }));
    }
    Ok(json!({
        "path": path.display().to_string(),
        "format": opened.format.name(),
        "legacy": opened.legacy,
        "file_size": opened.file_size,
        "unfinished_tail": opened.unfinished_tail,
        "tensor_count": reader.len(),
        "stored_bytes": stored_total,
        "decoded_bytes": decoded_total,
        "metadata": attributes_json(reader.metadata()),
        "tensors": tensors,
    }))
}

/// The human listing of one file: a summary line, the metadata, and a table of tensors.
pub fn print_file(out: &mut dyn Write, path: &Path, opened: &Opened, exact: bool) -> Result<()> {
    let reader = opened.reader.as_ref();
    let mut rows = Vec::new();
    let (mut stored_total, mut decoded_total) = (Some(0u64), Some(0u64));
    for name in reader.names() {
        let info = reader.info(name)?;
        let s = sizes(info);
        stored_total = stored_total.zip(s.stored).map(|(a, b)| a + b);
        decoded_total = decoded_total.zip(s.decoded).map(|(a, b)| a + b);
        let shown = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| size(v, exact));
        rows.push(vec![
            if name.is_empty() {
                "''".to_owned()
            } else {
                name.to_owned()
            },
            info.format.name().to_owned(),
            dtypes(info).join(","),
            info.shape.to_string(),
            encodings(info).join(","),
            shown(s.stored),
            shown(s.decoded),
            ratio_text(ratio(s.decoded, s.stored)),
        ]);
    }
    let format = if opened.legacy {
        "zt (legacy ZTEN0001)".to_owned()
    } else {
        opened.format.name().to_owned()
    };
    let plural = if reader.len() == 1 { "" } else { "s" };
    write!(
        out,
        "{}: {format}, {} tensor{plural}, {} on disk",
        path.display(),
        reader.len(),
        size(opened.file_size, exact)
    )?;
    if let (Some(stored), Some(decoded)) = (stored_total, decoded_total) {
        write!(
            out,
            ", tensors {} stored / {} decoded ({})",
            size(stored, exact),
            size(decoded, exact),
            ratio_text(ratio(Some(decoded), Some(stored)))
        )?;
    }
    writeln!(out)?;
    if opened.unfinished_tail > 0 {
        writeln!(
            out,
            "  {} after the last footer belong to an append that never finished (ignored)",
            size(opened.unfinished_tail, exact)
        )?;
    }
    let metadata = reader.metadata();
    if !metadata.is_empty() {
        writeln!(out, "metadata:")?;
        for (key, value) in metadata {
            writeln!(out, "  {key} = {}", value_text(value))?;
        }
    }
    if !rows.is_empty() {
        output::table(
            out,
            &[
                "name", "format", "dtype", "shape", "encoding", "stored", "decoded", "ratio",
            ],
            5,
            &rows,
        )?;
    }
    Ok(())
}
