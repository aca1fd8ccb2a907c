//! Readers wrapped for the CLI's needs: one that reports progress as components are read, one
//! that lists some tensors under other names.

use std::collections::BTreeMap;
use std::path::Path;

use indicatif::ProgressBar;
use ztensor::{Attributes, Error, TensorBytes, TensorInfo, TensorReader};

/// Decoded bytes of every component of every tensor, as far as the manifest says (the total of
/// a progress bar; components of unknown size count as stored size or 0).
pub fn total_bytes(reader: &dyn TensorReader) -> u64 {
    reader
        .names()
        .iter()
        .filter_map(|n| reader.info(n).ok())
        .flat_map(|i| i.components.values())
        .map(|c| c.decoded_len.or(c.stored_len()).unwrap_or(0))
        .sum()
}

/// Advances a progress bar by the decoded size of every component read through it.
pub struct Progressed<'a> {
    pub inner: &'a dyn TensorReader,
    pub bar: &'a ProgressBar,
}

impl TensorReader for Progressed<'_> {
    fn format_name(&self) -> &str {
        self.inner.format_name()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn names(&self) -> Vec<&str> {
        self.inner.names()
    }

    fn names_in_file_order(&self) -> Vec<&str> {
        self.inner.names_in_file_order()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.inner.info(name)
    }

    fn metadata(&self) -> &Attributes {
        self.inner.metadata()
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        let bytes = self.inner.component(name, component)?;
        self.bar.inc(bytes.len() as u64);
        Ok(bytes)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }
}

/// Lists some tensors of `inner` under new names (the others keep theirs).
pub struct Renamed<'a> {
    inner: &'a dyn TensorReader,
    /// New name -> the tensor's info under its new name.
    infos: BTreeMap<String, TensorInfo>,
    /// New name -> name in `inner`.
    original: BTreeMap<String, String>,
    /// Name in `inner` -> new name.
    renamed: BTreeMap<String, String>,
}

impl<'a> Renamed<'a> {
    /// `renames` maps names of `inner` to their new names.
    pub fn new(
        inner: &'a dyn TensorReader,
        renames: &BTreeMap<String, String>,
    ) -> Result<Renamed<'a>, Error> {
        let mut infos = BTreeMap::new();
        let mut original = BTreeMap::new();
        for name in inner.names() {
            let new = renames.get(name).map_or(name, String::as_str);
            let mut info = inner.info(name)?.clone();
            info.name = new.to_owned();
            infos.insert(new.to_owned(), info);
            original.insert(new.to_owned(), name.to_owned());
        }
        Ok(Renamed {
            inner,
            infos,
            original,
            renamed: renames.clone(),
        })
    }

    fn inner_name<'n>(&'n self, name: &'n str) -> &'n str {
        self.original.get(name).map_or(name, String::as_str)
    }
}

impl TensorReader for Renamed<'_> {
    fn format_name(&self) -> &str {
        self.inner.format_name()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn names(&self) -> Vec<&str> {
        self.infos.keys().map(String::as_str).collect()
    }

    fn names_in_file_order(&self) -> Vec<&str> {
        self.inner
            .names_in_file_order()
            .into_iter()
            .map(|n| self.renamed.get(n).map_or(n, String::as_str))
            .collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.infos
            .get(name)
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()).in_file(self.path()))
    }

    fn metadata(&self) -> &Attributes {
        self.inner.metadata()
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        self.inner.component(self.inner_name(name), component)
    }

    fn len(&self) -> usize {
        self.infos.len()
    }

    fn contains(&self, name: &str) -> bool {
        self.infos.contains_key(name)
    }
}
