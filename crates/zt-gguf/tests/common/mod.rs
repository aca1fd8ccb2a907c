//! Builds GGUF images byte by byte, so tests can write exactly the (broken) file they need.

#![allow(dead_code)]

pub const F32: u32 = 0;
pub const Q8_0: u32 = 8;
pub const VT_U32: u32 = 4;
pub const VT_STRING: u32 = 8;
pub const VT_ARRAY: u32 = 9;
pub const VT_U64: u32 = 10;

/// A GGUF file under construction (version 3 unless changed).
pub struct Gguf {
    pub version: u32,
    pub kvs: Vec<Vec<u8>>,
    pub infos: Vec<Vec<u8>>,
    pub data: Vec<u8>,
    pub alignment: usize,
}

impl Default for Gguf {
    fn default() -> Self {
        Gguf {
            version: 3,
            kvs: Vec::new(),
            infos: Vec::new(),
            data: Vec::new(),
            alignment: 32,
        }
    }
}

pub fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A key-value pair: key, type id, then the already encoded value.
pub fn kv(key: &str, value_type: u32, value: &[u8]) -> Vec<u8> {
    let mut out = string(key.as_bytes());
    out.extend_from_slice(&value_type.to_le_bytes());
    out.extend_from_slice(value);
    out
}

pub fn kv_u32(key: &str, v: u32) -> Vec<u8> {
    kv(key, VT_U32, &v.to_le_bytes())
}

/// A tensor info; `dims` innermost first, as stored.
pub fn info(name: &[u8], dims: &[u64], ggml_type: u32, offset: u64) -> Vec<u8> {
    let mut out = string(name);
    out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&ggml_type.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out
}

impl Gguf {
    /// A file with two f32 tensors `a` [2, 3] and `b` [4], packed like GGUFWriter packs them.
    pub fn two_tensors() -> Gguf {
        let mut g = Gguf::default();
        g.kvs
            .push(kv("general.architecture", VT_STRING, &string(b"test")));
        g.infos.push(info(b"a", &[3, 2], F32, 0));
        g.infos.push(info(b"b", &[4], F32, 32));
        g.data = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        g.data.resize(32, 0);
        g.data
            .extend((0..4u32).flat_map(|i| (10.0 + i as f32).to_le_bytes()));
        g
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.bytes_with_counts(self.infos.len() as u64, self.kvs.len() as u64)
    }

    /// The file with these counts in its header, whatever it holds.
    pub fn bytes_with_counts(&self, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&tensors.to_le_bytes());
        out.extend_from_slice(&kvs.to_le_bytes());
        for kv in &self.kvs {
            out.extend_from_slice(kv);
        }
        for info in &self.infos {
            out.extend_from_slice(info);
        }
        out.resize(out.len().next_multiple_of(self.alignment), 0);
        out.extend_from_slice(&self.data);
        out
    }
}

/// Writes `bytes` to a fresh temporary file and returns it (kept alive by the caller).
pub fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".gguf").tempfile().unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
    file
}
