//! Checking that a tensor file is whole: its structure, every digest, and on request that every
//! component decodes to its declared size.

use std::path::{Path, PathBuf};

use crate::{Error, FileFormat, Result, TensorReader, ZtReader};

/// What [`verify`] checks beyond structure and digests.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Decode every component of a `.zt` file and check its size (other formats are always read
    /// in full).
    pub deep: bool,
    /// The base of a checkpoint-delta `.zt` file (see [`crate::delta`]): checked to be the file
    /// the delta was made against, and needed to decode the delta's components. Without it a
    /// deep check of a delta file reports those components as needing their base.
    pub base: Option<PathBuf>,
}

/// What [`verify`] checked in one file.
#[derive(Debug)]
pub struct VerifyReport {
    pub format: FileFormat,
    pub tensors: usize,
    pub components: usize,
    /// Components whose digest was recomputed and matched.
    pub digests_checked: usize,
    /// Components read (and decoded, when encoded) in full.
    pub components_read: usize,
    /// Bytes after the last complete footer of a `.zt` file: an append that never finished, which
    /// readers ignore. 0 for every other file.
    pub unfinished_tail: u64,
    /// One error for each tensor that failed, naming the file and the tensor. The file is whole
    /// when this is empty.
    pub failures: Vec<Error>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Checks a file of any supported format.
///
/// Every format: the file opens (its header, manifest and every byte range were validated).
/// `.zt` (zTensor 1.x and legacy): every component's digest over its stored bytes; with
/// [`deep`](VerifyOptions::deep), every component is also decoded and its size checked against
/// the manifest and the shape.
/// zTensor 2.x: every part is read with its digest (over the decoded bytes) and content rules
/// checked, whatever `deep` says. Other formats carry no digests: every tensor is read in full,
/// which checks that its bytes are there and match its shape.
///
/// A file that does not open is an `Err`; failures of single tensors are collected in
/// [`VerifyReport::failures`] so that one bad tensor does not hide another.
pub fn verify(path: impl AsRef<Path>, options: &VerifyOptions) -> Result<VerifyReport> {
    let path = path.as_ref();
    let deep = options.deep;
    let format = crate::detect(path)?;
    if options.base.is_some() && format != FileFormat::Zt {
        return Err(Error::InvalidArgument(format!(
            "a base was given but {} is a {format} file, not a .zt checkpoint delta",
            path.display()
        )));
    }
    match format {
        FileFormat::Zt => {
            let reader = match &options.base {
                Some(base) => crate::delta::open(path, base)?,
                None => ZtReader::open(path)?,
            };
            let mut report = VerifyReport::new(format, &reader);
            report.unfinished_tail = reader.unfinished_tail();
            for name in reader.names_in_file_order() {
                let result = (|| -> Result<()> {
                    let info = reader.info(name)?;
                    for role in info.components.keys() {
                        if reader.verify_component(name, role)? {
                            report.digests_checked += 1;
                        }
                        if deep {
                            reader.component(name, role)?;
                            report.components_read += 1;
                        }
                    }
                    Ok(())
                })();
                report.record(result, name, path);
            }
            Ok(report)
        }
        #[cfg(feature = "zt2")]
        FileFormat::ZtV2 => {
            let options = zt_v2::OpenOptions {
                verify_checksums: true,
                ..zt_v2::OpenOptions::default()
            };
            let reader = zt_v2::ZtV2Reader::open_with(path, options)?;
            Ok(read_everything(format, &reader, true))
        }
        _ => {
            let reader = crate::open_as(path, format)?;
            Ok(read_everything(format, reader.as_ref(), false))
        }
    }
}

impl VerifyReport {
    fn new(format: FileFormat, reader: &dyn TensorReader) -> VerifyReport {
        let names = reader.names();
        let components = names
            .iter()
            .filter_map(|n| reader.info(n).ok())
            .map(|i| i.components.len())
            .sum();
        VerifyReport {
            format,
            tensors: names.len(),
            components,
            digests_checked: 0,
            components_read: 0,
            unfinished_tail: 0,
            failures: Vec::new(),
        }
    }

    fn record(&mut self, result: Result<()>, name: &str, path: &Path) {
        if let Err(e) = result {
            self.failures.push(e.in_tensor(name).in_file(path));
        }
    }
}

/// Reads every component of every tensor (dense data through `dense`, which also checks its
/// length against the shape). `digests_verified` says the reader checks digests as it reads.
fn read_everything(
    format: FileFormat,
    reader: &dyn TensorReader,
    digests_verified: bool,
) -> VerifyReport {
    let mut report = VerifyReport::new(format, reader);
    for name in reader.names_in_file_order() {
        let result = (|| -> Result<()> {
            let info = reader.info(name)?;
            for (role, component) in &info.components {
                if role == "data" && info.format == crate::Format::Dense {
                    reader.dense(name)?;
                } else {
                    reader.component(name, role)?;
                }
                report.components_read += 1;
                if digests_verified && component.digest.is_some() {
                    report.digests_checked += 1;
                }
            }
            Ok(())
        })();
        report.record(result, name, reader.path());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChecksumAlgorithm, ComponentOptions, DType, Writer};
    use std::os::unix::fs::FileExt;

    #[test]
    fn digests_are_checked_and_a_flipped_byte_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.zt");
        let mut w = Writer::create(&path).unwrap();
        let options = ComponentOptions::zstd(3).with_checksum(ChecksumAlgorithm::Crc32c);
        w.add_dense("a", [4], DType::U8, &[1, 2, 3, 4], options)
            .unwrap();
        w.add_dense(
            "b",
            [4],
            DType::U8,
            &[5, 6, 7, 8],
            ComponentOptions::raw().with_checksum(ChecksumAlgorithm::Sha256),
        )
        .unwrap();
        w.finish().unwrap();

        let deep = VerifyOptions {
            deep: true,
            ..VerifyOptions::default()
        };
        let report = verify(&path, &deep).unwrap();
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(
            (
                report.tensors,
                report.digests_checked,
                report.components_read
            ),
            (2, 2, 2)
        );

        let offset = {
            let r = ZtReader::open(&path).unwrap();
            r.info("b").unwrap().components["data"]
                .location
                .unwrap()
                .offset
        };
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xFF], offset).unwrap();
        let report = verify(&path, &VerifyOptions::default()).unwrap();
        assert_eq!(report.failures.len(), 1);
        let message = report.failures[0].to_string();
        assert!(message.contains("tensor 'b'"), "{message}");
        assert!(message.contains("m.zt"), "{message}");
    }

    #[test]
    fn a_file_that_does_not_open_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.zt");
        std::fs::write(&path, b"ZTEN1000 and then garbage").unwrap();
        let e = verify(&path, &VerifyOptions::default()).unwrap_err();
        assert!(e.to_string().contains("x.zt"), "{e}");
    }
}
