//! Part and shard digests: `"algo:lowercasehex"` over the decoded bytes.

use sha2::{Digest as _, Sha256};
use zt_core::Error;

/// Checks the text form zTensor 2.1.2 insists on when it opens a file: an algorithm name, a
/// colon and lowercase hex. Whether the algorithm is known only matters when verifying.
pub fn check_syntax(text: &str) -> Result<(), String> {
    match text.split_once(':') {
        Some((algo, hex))
            if !algo.is_empty()
                && !hex.is_empty()
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "digest must be 'algo:lowercase-hex', got '{}'",
            text.escape_debug()
        )),
    }
}

/// The digest of `bytes` in the algorithm `expected` names, in the same text form.
fn compute(expected: &str, bytes: &[u8]) -> Option<String> {
    let (algo, _) = expected.split_once(':')?;
    Some(match algo {
        "xxh3" => format!("xxh3:{:016x}", xxhash_rust::xxh3::xxh3_64(bytes)),
        "sha256" => {
            let hash = Sha256::digest(bytes);
            let mut text = String::with_capacity(7 + 64);
            text.push_str("sha256:");
            for b in hash {
                text.push_str(&format!("{b:02x}"));
            }
            text
        }
        _ => return None,
    })
}

/// Verifies `bytes` against a digest; `what` names the part or shard in errors. An algorithm
/// this build does not compute is an error, not a pass: the caller asked for verification.
pub fn verify(what: &str, expected: &str, bytes: &[u8]) -> Result<(), Error> {
    let actual = compute(expected, bytes).ok_or_else(|| Error::BadDigest {
        component: what.to_owned(),
        digest: expected.to_owned(),
    })?;
    if actual != expected {
        return Err(Error::ChecksumMismatch {
            component: what.to_owned(),
            expected: expected.to_owned(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // XXH3-64 of the empty input, and SHA-256 of "abc".
        verify("x", "xxh3:2d06800538d394c2", b"").unwrap();
        verify(
            "x",
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            b"abc",
        )
        .unwrap();
        assert!(matches!(
            verify("x", "xxh3:0000000000000000", b""),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            verify("x", "md5:00", b""),
            Err(Error::BadDigest { .. })
        ));
    }

    #[test]
    fn syntax() {
        assert!(check_syntax("xxh3:00ff").is_ok());
        assert!(check_syntax("xxh3:ABCDEF0123456789").is_err());
        assert!(check_syntax("xxh3:").is_err());
        assert!(check_syntax(":00").is_err());
        assert!(check_syntax("nocolon").is_err());
    }
}
