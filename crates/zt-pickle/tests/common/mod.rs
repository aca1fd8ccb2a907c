//! Builders for hand-made checkpoints: pickles opcode by opcode, zip archives, legacy files.
#![allow(dead_code)]

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Builds pickles opcode by opcode (protocol 2, as torch.save writes).
#[derive(Clone)]
pub struct P(pub Vec<u8>);

impl P {
    pub fn new() -> P {
        P(vec![0x80, 2])
    }
    pub fn raw(mut self, bytes: &[u8]) -> P {
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn global(self, module: &str, name: &str) -> P {
        self.raw(format!("c{module}\n{name}\n").as_bytes())
    }
    pub fn str(self, s: &str) -> P {
        let mut p = self.raw(b"X");
        p.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.raw(s.as_bytes())
    }
    /// LONG1 with 16 bytes of two's complement: any i128.
    pub fn int(self, i: i128) -> P {
        self.raw(&[0x8a, 16]).raw(&i.to_le_bytes())
    }
    pub fn ints(mut self, values: &[i128]) -> P {
        self = self.mark();
        for &v in values {
            self = self.int(v);
        }
        self.raw(b"t")
    }
    pub fn mark(self) -> P {
        self.raw(b"(")
    }
    pub fn tuple(self) -> P {
        self.raw(b"t")
    }
    pub fn reduce(self) -> P {
        self.raw(b"R")
    }
    pub fn stop(self) -> Vec<u8> {
        self.raw(b".").0
    }
}

/// A tensor as `_rebuild_tensor_v2` rebuilds it, with a storage persistent id.
pub fn tensor(
    p: P,
    class: &str,
    key: &str,
    numel: i128,
    offset: i128,
    size: &[i128],
    stride: &[i128],
) -> P {
    p.global("torch._utils", "_rebuild_tensor_v2")
        .mark()
        .mark()
        .str("storage")
        .global("torch", class)
        .str(key)
        .str("cpu")
        .int(numel)
        .tuple()
        .raw(b"Q")
        .int(offset)
        .ints(size)
        .ints(stride)
        .raw(b"\x89")
        .global("collections", "OrderedDict")
        .raw(b")")
        .reduce()
        .tuple()
        .reduce()
}

/// `{"w": tensor}`.
pub fn state_dict(
    class: &str,
    numel: i128,
    offset: i128,
    size: &[i128],
    stride: &[i128],
) -> Vec<u8> {
    let p = P::new().raw(b"}").mark().str("w");
    tensor(p, class, "0", numel, offset, size, stride)
        .raw(b"u")
        .stop()
}

pub fn zip_file(pickle: &[u8], records: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    let mut entries = vec![("archive/data.pkl".to_owned(), pickle)];
    entries.extend(records.iter().map(|(n, b)| (format!("archive/{n}"), *b)));
    for (name, bytes) in entries {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

pub fn checkpoint(pickle: &[u8], records: &[(&str, &[u8])]) -> Vec<u8> {
    zip_file(pickle, records, CompressionMethod::Stored)
}

/// A legacy (non-zip) torch.save file around one object pickle.
pub fn legacy(object: &[u8], keys: &[&str], storages: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = P::new().int(zt_pickle::LEGACY_MAGIC).stop();
    out.extend(P::new().int(1001).stop());
    out.extend(P::new().raw(b"}").stop());
    out.extend_from_slice(object);
    let mut list = P::new().raw(b"]").mark();
    for k in keys {
        list = list.str(k);
    }
    out.extend(list.raw(b"e").stop());
    for (count, bytes) in storages {
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}
