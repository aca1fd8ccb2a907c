//! crc32c and sha256 over stored component bytes.

use sha2::{Digest as _, Sha256};
use zt_core::{ChecksumAlgorithm, Digest, Error};

/// An incremental checksum, fed as bytes are written.
pub(crate) enum Hasher {
    None,
    Crc32c(Box<crc_fast::Digest>),
    Sha256(Box<Sha256>),
}

impl Hasher {
    pub(crate) fn new(algorithm: ChecksumAlgorithm) -> Hasher {
        match algorithm {
            ChecksumAlgorithm::None => Hasher::None,
            ChecksumAlgorithm::Crc32c => Hasher::Crc32c(Box::new(crc_fast::Digest::new(
                crc_fast::CrcAlgorithm::Crc32Iscsi,
            ))),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(Box::new(Sha256::new())),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::None => {}
            Hasher::Crc32c(d) => d.update(bytes),
            Hasher::Sha256(d) => d.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Option<Digest> {
        match self {
            Hasher::None => None,
            Hasher::Crc32c(d) => Some(Digest::Crc32c(d.finalize() as u32)),
            Hasher::Sha256(d) => Some(Digest::Sha256(d.finalize().into())),
        }
    }
}

/// The digest of `bytes` with `algorithm` (`None` for [`ChecksumAlgorithm::None`]).
pub fn compute(algorithm: ChecksumAlgorithm, bytes: &[u8]) -> Option<Digest> {
    let mut h = Hasher::new(algorithm);
    h.update(bytes);
    h.finish()
}

/// Checks `stored` against `digest`. Returns whether a check happened: `Ok(false)` for no digest
/// or an algorithm nobody defined; an error for a mismatch or a malformed crc32c/sha256 value.
pub fn verify(role: &str, digest: Option<&Digest>, stored: &[u8]) -> Result<bool, Error> {
    let Some(digest) = digest else {
        return Ok(false);
    };
    let actual = match digest {
        Digest::Crc32c(_) => compute(ChecksumAlgorithm::Crc32c, stored),
        Digest::Sha256(_) => compute(ChecksumAlgorithm::Sha256, stored),
        Digest::Other(text) => {
            if digest.algorithm().is_some() {
                return Err(Error::BadDigest {
                    component: role.to_owned(),
                    digest: text.clone(),
                });
            }
            return Ok(false);
        }
    }
    .expect("crc32c and sha256 always produce a digest");
    if &actual != digest {
        return Err(Error::ChecksumMismatch {
            component: role.to_owned(),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        assert_eq!(
            compute(ChecksumAlgorithm::Crc32c, b"123456789"),
            Some(Digest::Crc32c(0xE306_9283))
        );
        assert_eq!(
            compute(ChecksumAlgorithm::Crc32c, b""),
            Some(Digest::Crc32c(0))
        );
    }

    #[test]
    fn sha256_known_value() {
        let d = compute(ChecksumAlgorithm::Sha256, b"abc").unwrap();
        assert_eq!(
            d.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_reports_mismatch_and_malformed() {
        let good = compute(ChecksumAlgorithm::Crc32c, b"hello").unwrap();
        assert!(verify("data", Some(&good), b"hello").unwrap());
        let e = verify("data", Some(&good), b"hellp").unwrap_err();
        assert!(matches!(e, Error::ChecksumMismatch { .. }), "{e}");
        assert!(!verify("data", Some(&Digest::parse("md5:00")), b"x").unwrap());
        assert!(verify("data", Some(&Digest::parse("crc32c:0xZZZZZZZZ")), b"x").is_err());
        assert!(!verify("data", None, b"x").unwrap());
    }
}
