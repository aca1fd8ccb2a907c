//! Rewriting an older `.zt` file as a current one.

use std::path::Path;

use crate::{
    ChecksumAlgorithm, Component, ComponentOptions, Compression, ConvertSummary, Encoding, Error,
    FileFormat, OpenOptions, Result, TensorReader, Writer, ZtReader,
};

/// zstd level for components that were zstd-compressed in the source: the level they were
/// written at is not recorded, and 3 is what zTensor and ztensor use by default.
const MIGRATE_ZSTD_LEVEL: i32 = 3;

/// Rewrites a `.zt` file of any version ztensor reads (legacy `ZTEN0001`, zTensor 1.x, zTensor
/// 2.x) as a current zTensor 1.2 file that `ztensor==1.2.3` and every ztensor reader open.
///
/// Every tensor keeps its name, shape, format, component dtypes and logical types, and
/// attributes; root attributes are kept. Each component keeps its kind of storage: a raw one
/// stays raw, a zstd one is recompressed with zstd (level 3), a weight-codec one with the codec
/// (default effort), any other encoding is stored raw.
/// A component that had a crc32c or sha256 digest gets a fresh one of the same algorithm over
/// its new stored bytes (digests of other algorithms, such as zTensor 2.x's xxh3, are dropped:
/// the 1.x format has no place for them). The source's digests are checked as it is read.
/// Files of other formats are refused: [`convert`](crate::convert) is for them.
pub fn migrate(source: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<ConvertSummary> {
    let source = source.as_ref();
    // Digests are checked on every read, raw components included: a migration must not carry
    // corruption forward.
    let reader: Box<dyn TensorReader> = match crate::detect(source)? {
        FileFormat::Zt => Box::new(ZtReader::open_with(
            source,
            OpenOptions {
                verify_checksums: true,
                ..OpenOptions::default()
            },
        )?),
        #[cfg(feature = "zt2")]
        FileFormat::ZtV2 => Box::new(zt_v2::ZtV2Reader::open_with(
            source,
            zt_v2::OpenOptions {
                verify_checksums: true,
                ..zt_v2::OpenOptions::default()
            },
        )?),
        other => {
            return Err(Error::InvalidArgument(format!(
                "{} is a {other} file, not .zt; convert it instead",
                source.display()
            )));
        }
    };
    let mut writer = Writer::create(dest)?;
    let metadata = reader.metadata();
    if !metadata.is_empty() {
        writer.set_attributes(Some(metadata.clone()));
    }
    let mut bytes_read = 0;
    for name in reader.names_in_file_order() {
        let info = reader.info(name)?;
        let mut tensor = writer.begin_tensor(name, info.shape.clone(), info.format.clone())?;
        for (role, component) in &info.components {
            let bytes = reader.component(name, role)?;
            bytes_read += bytes.len() as u64;
            tensor.write_component(
                role,
                component.dtype,
                component.logical_type.clone(),
                &bytes,
                storage_of(component),
            )?;
        }
        tensor.set_attributes(info.attributes.clone());
        tensor.finish()?;
    }
    let file_size = writer.finish()?;
    Ok(ConvertSummary {
        tensors: reader.len(),
        bytes_read,
        file_size,
    })
}

/// The storage a migrated component gets: the source's kind of encoding and digest algorithm.
fn storage_of(component: &Component) -> ComponentOptions {
    let compression = match &component.encoding {
        Encoding::Zstd => Compression::Zstd(MIGRATE_ZSTD_LEVEL),
        Encoding::Other(name) if name == zt_format::CODEC_ENCODING => {
            Compression::Codec(zt_codec::Effort::Default)
        }
        _ => Compression::Raw,
    };
    let checksum = component
        .digest
        .as_ref()
        .and_then(|d| d.algorithm())
        .unwrap_or(ChecksumAlgorithm::None);
    ComponentOptions {
        compression,
        checksum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Value};

    #[test]
    fn keeps_tensors_encodings_and_digests_and_refuses_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("old.zt");
        let mut w = Writer::create(&src).unwrap();
        w.set_attribute("k", "v");
        w.add_dense(
            "z",
            [3],
            DType::U16,
            &[1, 0, 2, 0, 3, 0],
            ComponentOptions::zstd(19).with_checksum(ChecksumAlgorithm::Sha256),
        )
        .unwrap();
        w.add_coo("s", [4], DType::U8, &[7], &[2], ComponentOptions::raw())
            .unwrap();
        w.finish().unwrap();

        let dest = dir.path().join("new.zt");
        let summary = migrate(&src, &dest).unwrap();
        assert_eq!(summary.tensors, 2);
        let r = ZtReader::open(&dest).unwrap();
        assert_eq!(r.metadata()["k"], Value::from("v"));
        let z = &r.info("z").unwrap().components["data"];
        assert_eq!(z.encoding, Encoding::Zstd);
        assert_eq!(
            z.digest.as_ref().unwrap().algorithm(),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(&*r.dense("z").unwrap(), &[1, 0, 2, 0, 3, 0]);
        assert_eq!(r.info("s").unwrap().format, crate::Format::SparseCoo);
        assert_eq!(r.verify_all(true).unwrap(), 1);

        let npy = dir.path().join("a.npy");
        std::fs::write(&npy, b"\x93NUMPY\x01\x00").unwrap();
        let e = migrate(&npy, dir.path().join("x.zt")).unwrap_err();
        assert!(e.to_string().contains("convert it instead"), "{e}");
    }
}
