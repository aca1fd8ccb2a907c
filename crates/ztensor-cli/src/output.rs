//! Presentation shared by the subcommands: sizes, tables, metadata values as text and JSON,
//! progress bars, and the one-line error message.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use ztensor::Value;

const KIB: f64 = 1024.0;
const MIB: f64 = KIB * 1024.0;
const GIB: f64 = MIB * 1024.0;

/// Bytes with a binary unit that suits them (`512 B`, `1.5 KiB`, `3.2 GiB`), or the exact count.
pub fn size(bytes: u64, exact: bool) -> String {
    let b = bytes as f64;
    if exact || bytes < 1024 {
        format!("{bytes} B")
    } else if b < MIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < GIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.2} GiB", b / GIB)
    }
}

/// Decoded over stored bytes, as `4.21x`; `-` when either is unknown or nothing is stored.
pub fn ratio(decoded: Option<u64>, stored: Option<u64>) -> Option<f64> {
    match (decoded, stored) {
        (Some(d), Some(s)) if s > 0 => Some(d as f64 / s as f64),
        _ => None,
    }
}

pub fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

/// Writes a table whose columns line up: the first `left` columns (text) are left-aligned, the
/// others (figures) right-aligned. Markdown-compatible, so it pastes into notes as a table.
pub fn table(
    out: &mut dyn Write,
    headers: &[&str],
    left: usize,
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let pad = |i: usize, text: &str| {
        if i < left {
            format!("{text:<w$}", w = widths[i])
        } else {
            format!("{text:>w$}", w = widths[i])
        }
    };
    let line = |out: &mut dyn Write, cells: Vec<String>| writeln!(out, "| {} |", cells.join(" | "));
    line(
        out,
        headers.iter().enumerate().map(|(i, h)| pad(i, h)).collect(),
    )?;
    line(
        out,
        widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                if i < left {
                    "-".repeat(w)
                } else {
                    format!("{}:", "-".repeat(w - 1))
                }
            })
            .collect(),
    )?;
    for row in rows {
        line(
            out,
            row.iter().enumerate().map(|(i, c)| pad(i, c)).collect(),
        )?;
    }
    Ok(())
}

/// A metadata or attribute value as JSON. Values JSON cannot hold directly are tagged objects:
/// `{"$bytes": "<hex>"}`, `{"$float": "nan" | "inf" | "-inf"}`, `{"$int": "<decimal>"}` for
/// integers outside i64/u64, `{"$tag": N, "value": V}` for CBOR tags, and `{"$map": [[K, V],
/// ...]}` for maps whose keys are not all text.
pub fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Integer(i) => {
            if let Ok(v) = i64::try_from(*i) {
                json!(v)
            } else if let Ok(v) = u64::try_from(*i) {
                json!(v)
            } else {
                json!({ "$int": i.to_string() })
            }
        }
        Value::Float(f) if f.is_finite() => json!(f),
        Value::Float(f) => {
            let text = if f.is_nan() {
                "nan"
            } else if *f > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            json!({ "$float": text })
        }
        Value::Text(s) => json!(s),
        Value::Bytes(b) => json!({ "$bytes": hex(b) }),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(value_json).collect()),
        Value::Map(entries) => {
            if entries.iter().all(|(k, _)| matches!(k, Value::Text(_))) {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.as_str().unwrap_or_default().to_owned(), value_json(v));
                }
                serde_json::Value::Object(map)
            } else {
                let pairs = entries
                    .iter()
                    .map(|(k, v)| json!([value_json(k), value_json(v)]))
                    .collect::<Vec<_>>();
                json!({ "$map": pairs })
            }
        }
        Value::Tag(tag, inner) => json!({ "$tag": tag, "value": value_json(inner) }),
    }
}

pub fn attributes_json(attributes: &ztensor::Attributes) -> serde_json::Value {
    serde_json::Value::Object(
        attributes
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Most characters of a value shown in a human listing; `--json` shows everything.
const VALUE_WIDTH: usize = 100;

/// A value on one line for people: long arrays and texts are cut short with their size said.
pub fn value_text(value: &Value) -> String {
    let text = match value {
        Value::Array(items) if items.len() > 16 => {
            return format!("[{} items]", items.len());
        }
        Value::Bytes(b) if b.len() > 32 => return format!("<{} bytes>", b.len()),
        Value::Text(s) => serde_json::to_string(s).unwrap_or_default(),
        other => value_json(other).to_string(),
    };
    let text = text.replace(['\n', '\r'], " ");
    if text.chars().count() > VALUE_WIDTH {
        let cut: String = text.chars().take(VALUE_WIDTH).collect();
        format!("{cut}... ({} chars)", text.chars().count())
    } else {
        text
    }
}

/// Whether progress bars are drawn: only on a terminal, and not with `--quiet`.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub enabled: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// A bar over `total` bytes, drawn on stderr.
    pub fn bytes(self, total: u64, message: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        bar
    }

    /// A bar over `total` items (files), drawn on stderr.
    pub fn items(self, total: u64, message: &str) -> ProgressBar {
        if !self.enabled || total < 2 {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {wide_msg}")
                .expect("a valid progress template")
                .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        bar
    }
}

/// The error as one line: each cause in the chain that its parent's message does not already
/// include (ztensor's errors embed their sources: `model.zt: tensor 'w': ...`).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_json_cannot_hold_are_tagged() {
        assert_eq!(
            value_json(&Value::Float(f64::NAN)),
            json!({"$float": "nan"})
        );
        assert_eq!(
            value_json(&Value::Bytes(vec![0, 255])),
            json!({"$bytes": "00ff"})
        );
        assert_eq!(
            value_json(&Value::Integer(-(1i128 << 64))),
            json!({"$int": "-18446744073709551616"})
        );
        assert_eq!(
            value_json(&Value::Integer(u64::MAX.into())),
            json!(u64::MAX)
        );
        assert_eq!(
            value_json(&Value::Map(vec![(Value::Integer(1), Value::Null)])),
            json!({"$map": [[1, null]]})
        );
        assert_eq!(
            value_json(&Value::Tag(1, Box::new(Value::Integer(2)))),
            json!({"$tag": 1, "value": 2})
        );
    }

    #[test]
    fn long_values_are_cut_for_people() {
        let many = Value::Array((0..100).map(|i| Value::Integer(i.into())).collect());
        assert_eq!(value_text(&many), "[100 items]");
        let long = Value::Text("x".repeat(500));
        assert!(value_text(&long).ends_with("(502 chars)"));
        assert_eq!(value_text(&Value::Text("a\nb".into())), "\"a\\nb\"");
    }

    #[test]
    fn sizes() {
        assert_eq!(size(512, false), "512 B");
        assert_eq!(size(1536, false), "1.5 KiB");
        assert_eq!(size(3 << 30, false), "3.00 GiB");
        assert_eq!(size(1536, true), "1536 B");
    }
}
