//! [`SafetensorsReader`]: one memory map, validated at open, zero-copy tensor bytes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use zt_core::{
    Attributes, Error, MappedFile, TensorBytes, TensorInfo, TensorReader, Value, checked_slice,
};

use crate::FORMAT_NAME;
use crate::header::{ParsedFile, parse_file};
use crate::writer::SafetensorsTensor;

/// An open safetensors file.
#[derive(Debug)]
pub struct SafetensorsReader {
    file: MappedFile,
    parsed: ParsedFile,
    /// `__metadata__` as attributes (text values), for [`TensorReader::metadata`].
    attributes: Attributes,
}

impl SafetensorsReader {
    /// Maps the file and validates its whole header against it; nothing is read lazily later
    /// that could still fail validation.
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsReader, Error> {
        let path = path.as_ref();
        let file = MappedFile::open(path)?;
        let parsed = parse_file(file.bytes()).map_err(|e| e.in_file(path))?;
        let attributes = parsed
            .metadata
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), Value::Text(v.clone())))
            .collect();
        Ok(SafetensorsReader {
            file,
            parsed,
            attributes,
        })
    }

    /// Validates an in-memory file image with exactly the checks of [`open`](Self::open)
    /// (for fuzzing and for callers that hold the bytes already).
    pub fn validate_bytes(bytes: &[u8]) -> Result<(), Error> {
        parse_file(bytes).map(|_| ())
    }

    /// The whole mapped file.
    pub fn file_bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    /// `N`, the length of the JSON header (padding included).
    pub fn header_len(&self) -> u64 {
        self.parsed.header_len
    }

    /// File offset of the data section, `8 + N`.
    pub fn data_start(&self) -> u64 {
        8 + self.parsed.header_len
    }

    /// `__metadata__` exactly as stored: `None` when the header has no such key, which
    /// [`metadata`](TensorReader::metadata) cannot tell from an empty map.
    pub fn header_metadata(&self) -> Option<&BTreeMap<String, String>> {
        self.parsed.metadata.as_ref()
    }

    /// A tensor as [`crate::write_safetensors`] takes it, its bytes borrowed from the map.
    pub fn tensor(&self, name: &str) -> Result<SafetensorsTensor<'_>, Error> {
        let info = self.info(name)?;
        SafetensorsTensor::from_dense(info, self.data(info)?)
    }

    /// Every tensor in name order, ready to be written back.
    pub fn tensors(&self) -> Result<Vec<SafetensorsTensor<'_>>, Error> {
        self.names().into_iter().map(|n| self.tensor(n)).collect()
    }

    fn data(&self, info: &TensorInfo) -> Result<&[u8], Error> {
        let component = info.dense_component()?;
        // Every range was checked against the file at open; checking again costs nothing and
        // keeps this function free of indexing that could panic.
        let range = component
            .location
            .ok_or_else(|| Error::malformed(FORMAT_NAME, "tensor without a byte range"))?;
        checked_slice(self.file.bytes(), range.offset, range.length, "data")
            .map_err(|e| e.in_tensor(&info.name).in_file(self.file.path()))
    }
}

impl TensorReader for SafetensorsReader {
    fn format_name(&self) -> &str {
        FORMAT_NAME
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    /// Sorted by UTF-8 bytes, as `safe_open(...).keys()` returns them (the data section is
    /// ordered by dtype size, which is a writer's detail, not an order users see).
    fn names(&self) -> Vec<&str> {
        self.parsed.tensors.keys().map(String::as_str).collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.parsed
            .tensors
            .get(name)
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()).in_file(self.file.path()))
    }

    fn metadata(&self) -> &Attributes {
        &self.attributes
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        let info = self.info(name)?;
        if component != "data" {
            return Err(Error::ComponentNotFound {
                tensor: name.to_owned(),
                component: component.to_owned(),
            }
            .in_file(self.file.path()));
        }
        self.data(info).map(Cow::Borrowed)
    }

    fn len(&self) -> usize {
        self.parsed.tensors.len()
    }
}
