//! Which format a file is, from its bytes (the extension only breaks ties).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::{Error, Result};

/// A file format ztensor can detect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileFormat {
    /// `.zt`, current (`ZTEN1000`) or legacy (`ZTEN0001`).
    Zt,
    /// zTensor 2.x `.zt`.
    ZtV2,
    Safetensors,
    /// PyTorch checkpoints: zip archives and legacy `torch.save` pickles.
    Pickle,
    Gguf,
    Npy,
    Npz,
    Onnx,
    Hdf5,
}

impl FileFormat {
    pub const ALL: [FileFormat; 9] = [
        FileFormat::Zt,
        FileFormat::ZtV2,
        FileFormat::Safetensors,
        FileFormat::Pickle,
        FileFormat::Gguf,
        FileFormat::Npy,
        FileFormat::Npz,
        FileFormat::Onnx,
        FileFormat::Hdf5,
    ];

    /// The short name readers report (`TensorReader::format_name`).
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Zt => "zt",
            FileFormat::ZtV2 => "zt2",
            FileFormat::Safetensors => "safetensors",
            FileFormat::Pickle => "pickle",
            FileFormat::Gguf => "gguf",
            FileFormat::Npy => "npy",
            FileFormat::Npz => "npz",
            FileFormat::Onnx => "onnx",
            FileFormat::Hdf5 => "hdf5",
        }
    }

    /// The format a file extension suggests (used only when the bytes do not decide).
    pub fn from_extension(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "zt" => FileFormat::Zt,
            "safetensors" => FileFormat::Safetensors,
            "pt" | "pth" | "bin" | "pkl" | "ckpt" => FileFormat::Pickle,
            "gguf" => FileFormat::Gguf,
            "npy" => FileFormat::Npy,
            "npz" => FileFormat::Npz,
            "onnx" => FileFormat::Onnx,
            "h5" | "hdf5" | "hdf" => FileFormat::Hdf5,
            _ => return None,
        })
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const HDF5_SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";
const ZT2_MAGIC: &[u8] = b"\x89ZT2\r\n\x1a\n";
/// `torch.save`'s legacy format opens with its magic number 0x1950a86a20f9469cfc6c pickled as
/// LONG1 (protocols 2+, after the PROTO opcode) or as a text LONG (protocols 0 and 1).
const TORCH_LEGACY_PREFIX: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
const TORCH_LEGACY_TEXT_PREFIX: &[u8] = b"L119547037146038801333356";

/// Detects the format of the file at `path`.
pub fn detect(path: impl AsRef<Path>) -> Result<FileFormat> {
    let path = path.as_ref();
    detect_inner(path).map_err(|e| e.in_file(path))
}

fn detect_inner(path: &Path) -> Result<FileFormat> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = [0u8; 16];
    let n = read_up_to(&mut file, &mut head)?;
    let head = &head[..n];
    let by_extension = FileFormat::from_extension(path);

    if head.starts_with(zt_format::MAGIC) || head.starts_with(zt_format::LEGACY_MAGIC) {
        return Ok(FileFormat::Zt);
    }
    if head.starts_with(ZT2_MAGIC) {
        return Ok(FileFormat::ZtV2);
    }
    if head.starts_with(b"GGUF") {
        return Ok(FileFormat::Gguf);
    }
    if head.starts_with(b"\x93NUMPY") {
        return Ok(FileFormat::Npy);
    }
    if is_hdf5(&mut file, head, len)? {
        return Ok(FileFormat::Hdf5);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return zip_kind(&mut file, by_extension);
    }
    if head.starts_with(TORCH_LEGACY_PREFIX)
        || head.starts_with(TORCH_LEGACY_TEXT_PREFIX)
        || (head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]))
    {
        return Ok(FileFormat::Pickle);
    }
    if looks_like_safetensors(head, len) {
        return Ok(FileFormat::Safetensors);
    }
    // ONNX is a bare protobuf message with no magic, and protocol 0/1 pickles start with any
    // of several opcodes: trust the extension (the reader then validates everything).
    if let Some(format @ (FileFormat::Onnx | FileFormat::Pickle)) = by_extension {
        return Ok(format);
    }
    Err(Error::Unsupported(format!(
        "unrecognised file format (first bytes \"{}\")",
        head.escape_ascii()
    )))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The HDF5 signature sits at 0, or at 512, 1024, 2048, ... when the file has a user block.
fn is_hdf5(file: &mut File, head: &[u8], len: u64) -> Result<bool> {
    if head.starts_with(HDF5_SIGNATURE) {
        return Ok(true);
    }
    let mut offset = 512u64;
    let mut sig = [0u8; 8];
    while offset + 8 <= len && offset <= 1 << 20 {
        file.seek(SeekFrom::Start(offset))?;
        if read_up_to(file, &mut sig)? == 8 && sig == HDF5_SIGNATURE {
            return Ok(true);
        }
        offset *= 2;
    }
    Ok(false)
}

/// A safetensors file starts with the u64 length of a JSON header that begins with `{`.
fn looks_like_safetensors(head: &[u8], len: u64) -> bool {
    if head.len() < 9 {
        return false;
    }
    let header_len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    header_len >= 2 && header_len <= len - 8 && head[8] == b'{'
}

/// PyTorch archives hold a `data.pkl` record; `.npz` archives hold `.npy` members.
fn zip_kind(file: &mut File, by_extension: Option<FileFormat>) -> Result<FileFormat> {
    file.seek(SeekFrom::Start(0))?;
    let archive =
        zip::ZipArchive::new(&mut *file).map_err(|e| Error::malformed("zip", e.to_string()))?;
    let names = archive
        .file_names()
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::malformed("zip", e.to_string()))?;
    let torch = names
        .iter()
        .any(|n| n == "data.pkl" || n.ends_with("/data.pkl"));
    let npz = !names.is_empty() && names.iter().all(|n| n.ends_with(".npy"));
    match (torch, npz) {
        (true, false) => Ok(FileFormat::Pickle),
        (false, true) => Ok(FileFormat::Npz),
        _ => match by_extension {
            Some(f @ (FileFormat::Pickle | FileFormat::Npz)) => Ok(f),
            _ if names.is_empty() => Ok(FileFormat::Npz),
            _ => Err(Error::Unsupported(
                "a zip archive that is neither a PyTorch checkpoint (no data.pkl) nor an .npz \
                 (members are not all .npy)"
                    .into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn magic_bytes_decide() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            detect(write(d, "a.bin", b"ZTEN1000....")).unwrap(),
            FileFormat::Zt
        );
        assert_eq!(
            detect(write(d, "a.x", b"ZTEN0001")).unwrap(),
            FileFormat::Zt
        );
        assert_eq!(
            detect(write(d, "a.zt", ZT2_MAGIC)).unwrap(),
            FileFormat::ZtV2
        );
        assert_eq!(
            detect(write(d, "m.zt", b"GGUF\x03\0\0\0")).unwrap(),
            FileFormat::Gguf
        );
        assert_eq!(
            detect(write(d, "m", b"\x93NUMPY\x01\x00")).unwrap(),
            FileFormat::Npy
        );
        assert_eq!(
            detect(write(d, "m", HDF5_SIGNATURE)).unwrap(),
            FileFormat::Hdf5
        );
        assert_eq!(
            detect(write(d, "m", TORCH_LEGACY_PREFIX)).unwrap(),
            FileFormat::Pickle
        );
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        assert_eq!(
            detect(write(d, "m.pt", &st)).unwrap(),
            FileFormat::Safetensors
        );
        assert_eq!(
            detect(write(d, "m.onnx", b"\x08\x07")).unwrap(),
            FileFormat::Onnx
        );
        let e = detect(write(d, "m.onnx.txt", b"hello")).unwrap_err();
        assert!(e.to_string().contains("unrecognised"), "{e}");
        let mut user_block = vec![0u8; 512];
        user_block.extend_from_slice(HDF5_SIGNATURE);
        assert_eq!(
            detect(write(d, "u", &user_block)).unwrap(),
            FileFormat::Hdf5
        );
    }
}
