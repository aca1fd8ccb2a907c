//! External data (`data_location = EXTERNAL`): finding the file a tensor's bytes live in, safely.
//!
//! A model names its data file with a path relative to the model's directory. A hostile model
//! could name `/etc/passwd`, `../../secret`, or a symlink that points out of the directory; all
//! of these are refused, so opening an untrusted model never reads a file outside its directory.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use zt_core::{Error, MappedFile, Value};

use crate::proto::StringStringEntryProto;
use crate::reader::check_limit;
use crate::{FORMAT, MAX_EXTERNAL_FILES};

/// Where one tensor's bytes lie in an external file, as its `external_data` entries say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef {
    pub location: String,
    pub offset: u64,
    /// `None`: up to the end of the file.
    pub length: Option<u64>,
    /// Every entry as written (location, offset, length, checksum, and unknown keys), for the
    /// tensor's attributes.
    pub entries: Vec<(String, String)>,
}

impl ExternalRef {
    pub fn parse(entries: &[StringStringEntryProto]) -> Result<ExternalRef, Error> {
        let entries: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e.key().to_owned(), e.value().to_owned()))
            .collect();
        // Like onnx's loader, a repeated key takes its last value.
        let get = |key: &str| entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
        let number = |key: &str| -> Result<Option<u64>, Error> {
            get(key)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        Error::malformed(
                            FORMAT,
                            format!("external_data {key} '{v}' is not a byte count"),
                        )
                    })
                })
                .transpose()
        };
        let location = get("location")
            .ok_or_else(|| {
                Error::malformed(FORMAT, "external tensor has no external_data location")
            })?
            .clone();
        Ok(ExternalRef {
            offset: number("offset")?.unwrap_or(0),
            length: number("length")?,
            location,
            entries,
        })
    }

    /// The entries as a tensor attribute value (a map of text to text, in file order).
    pub fn attribute(&self) -> Value {
        Value::Map(
            self.entries
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                .collect(),
        )
    }
}

/// The external files of one model, each mapped once however many tensors it holds.
#[derive(Debug)]
pub struct ExternalFiles {
    /// The model's directory, canonicalized: every data file must resolve inside it.
    dir: PathBuf,
    by_path: HashMap<PathBuf, usize>,
    files: Vec<Arc<MappedFile>>,
}

impl ExternalFiles {
    pub fn new(model_path: &Path) -> ExternalFiles {
        let dir = match model_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        ExternalFiles {
            dir,
            by_path: HashMap::new(),
            files: Vec::new(),
        }
    }

    /// The index of the mapped file `location` names (see [`ExternalFiles::file`]).
    pub fn resolve(&mut self, location: &str) -> Result<usize, Error> {
        let path = self.checked_path(location)?;
        if let Some(&index) = self.by_path.get(&path) {
            return Ok(index);
        }
        check_limit(
            "external data files",
            self.files.len() + 1,
            MAX_EXTERNAL_FILES,
            "MAX_EXTERNAL_FILES",
        )?;
        let map = MappedFile::open(&path)?;
        self.files.push(Arc::new(map));
        self.by_path.insert(path, self.files.len() - 1);
        Ok(self.files.len() - 1)
    }

    pub fn file(&self, index: usize) -> &MappedFile {
        &self.files[index]
    }

    pub fn files(&self) -> &[Arc<MappedFile>] {
        &self.files
    }

    pub fn into_files(self) -> Vec<Arc<MappedFile>> {
        self.files
    }

    /// The canonical path of `location`, refused unless it is a regular file inside the model's
    /// directory.
    fn checked_path(&self, location: &str) -> Result<PathBuf, Error> {
        let refuse = |why: &str| {
            Err(Error::malformed(
                FORMAT,
                format!("external data location '{}' {why}", location.escape_debug()),
            ))
        };
        let relative = Path::new(location);
        if location.is_empty() || location.contains('\0') {
            return refuse("is not a file name");
        }
        if relative.is_absolute() {
            return refuse("is absolute: it must be relative to the model's directory");
        }
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return refuse("contains '..': it must stay inside the model's directory");
        }
        let dir = self.dir.canonicalize()?;
        let path = match dir.join(relative).canonicalize() {
            Ok(path) => path,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return refuse(&format!("does not exist in {}", dir.display()));
            }
            Err(e) => return Err(e.into()),
        };
        // Symlinks are resolved by now: what matters is where the path really leads.
        if !path.starts_with(&dir) {
            return refuse(&format!(
                "leads outside the model's directory (to {})",
                path.display()
            ));
        }
        // Opening a FIFO or a device could block or never end: only regular files are read.
        if !std::fs::metadata(&path)?.is_file() {
            return refuse("is not a regular file");
        }
        Ok(path)
    }
}
