//! Hostile and broken files, built in code: each must be an `Err` with a clear message, never a
//! panic, a hang or an allocation sized by a lie. Every input is also given to the reference
//! crate: what it refuses we must refuse too, and the only things we refuse that it accepts are
//! the documented duplicate keys.

use std::path::Path;

use zt_core::{Error, TensorReader};
use zt_safetensors::{MAX_HEADER_LEN, SafetensorsReader};

/// A file: `N` from the header's length, the header, the data section.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    file_with_len(header.len() as u64, header.as_bytes(), data)
}

fn file_with_len(n: u64, header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = n.to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Opens `bytes` as a file, checks that the in-memory validation agrees, and that the reference
/// refuses it too unless `reference_accepts` (the cases where we are stricter).
fn open_bytes_with(bytes: &[u8], reference_accepts: bool) -> Result<SafetensorsReader, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let opened = SafetensorsReader::open(&path);
    let validated = SafetensorsReader::validate_bytes(bytes);
    assert_eq!(opened.is_ok(), validated.is_ok());
    let reference = safetensors::SafeTensors::deserialize(bytes);
    if opened.is_ok() {
        assert!(reference.is_ok(), "we accept what the reference refuses");
    } else {
        assert_eq!(
            reference.is_ok(),
            reference_accepts,
            "{:?}",
            opened.as_ref().err()
        );
        let err = opened.as_ref().err().unwrap();
        assert_eq!(err.path(), Some(path.as_path()), "errors name the file");
    }
    opened
}

fn refused(bytes: &[u8]) -> Error {
    match open_bytes_with(bytes, false) {
        Ok(_) => panic!("accepted a hostile file"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_message(err: &Error, needle: &str) {
    let text = err.to_string();
    assert!(text.contains(needle), "{text:?} does not say {needle:?}");
}

const VALID: &str = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}"#;

#[test]
fn a_valid_small_file_opens() {
    let reader = open_bytes_with(&file(VALID, &[0; 11]), true).unwrap();
    assert_eq!(reader.names(), ["a", "b"]);
}

#[test]
fn every_truncation_is_refused() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/safetensors/edge_cases.safetensors");
    for whole in [file(VALID, &[0; 11]), std::fs::read(fixture).unwrap()] {
        for len in 0..whole.len() {
            let err = refused(&whole[..len]);
            match err.kind() {
                Error::Truncated { .. } | Error::Malformed { .. } | Error::OutOfBounds { .. } => {}
                other => panic!("length {len}: unexpected {other}"),
            }
        }
        // One byte too many is refused as well: the data section must end at the tensors' end.
        let mut longer = whole.clone();
        longer.push(0);
        assert_message(&refused(&longer), "belong to no tensor");
    }
}

#[test]
fn short_files_are_truncated() {
    for bytes in [&b""[..], b"\x08\0\0", b"\x02\0\0\0\0\0\0"] {
        let err = refused(bytes);
        assert!(matches!(err.kind(), Error::Truncated { .. }), "{err}");
        assert_message(&err, "header length");
    }
}

#[test]
fn lying_header_lengths_are_refused_before_reading() {
    for n in [u64::MAX, 1 << 63, MAX_HEADER_LEN + 1] {
        let err = refused(&file_with_len(n, b"{}", b""));
        assert!(
            matches!(err.kind(), Error::LimitExceeded { size, limit, .. }
                if *size == n && *limit == MAX_HEADER_LEN),
            "{err}"
        );
    }
    // Within the limit but past the end of the file.
    let err = refused(&file_with_len(1000, b"{}", b""));
    assert!(
        matches!(
            err.kind(),
            Error::Truncated {
                needed: 1000,
                available: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_message(&err, "JSON header");
    // Shorter than the JSON: the rest of the object falls into the data section.
    let err = refused(&file_with_len(5, br#"{"a":1}"#, b""));
    assert_message(&err, "invalid JSON header");
}

#[test]
fn headers_that_are_not_json_objects_are_refused() {
    for (header, needle) in [
        ("hello", "invalid JSON header"),
        ("{", "EOF while parsing"),
        (r#"{"a":1,}"#, "invalid JSON header"),
        ("[]", "expected a JSON object"),
        (r#""text""#, "expected a JSON object"),
        ("1", "expected a JSON object"),
        ("null", "expected a JSON object"),
        ("", "EOF while parsing"),
        ("{}{}", "trailing characters"),
        ("{}\0\0\0\0\0\0", "trailing characters"),
    ] {
        let err = refused(&file(header, b""));
        assert!(matches!(err.kind(), Error::Malformed { .. }), "{err}");
        assert_message(&err, needle);
    }
    let err = refused(&file_with_len(4, b"{\xff}\x80", b""));
    assert_message(&err, "not valid UTF-8");
}

#[test]
fn whitespace_around_the_object_is_fine() {
    let header = format!(" \n{VALID}\t\n        ");
    open_bytes_with(&file(&header, &[0; 11]), true).unwrap();
}

#[test]
fn malformed_entries_name_the_tensor() {
    for (header, needle) in [
        (r#"{"w":1}"#, "tensor 'w': invalid type: integer `1`"),
        (
            r#"{"w":{"shape":[1],"data_offsets":[0,1]}}"#,
            "missing field `dtype`",
        ),
        (
            r#"{"w":{"dtype":"U8","data_offsets":[0,1]}}"#,
            "missing field `shape`",
        ),
        (
            r#"{"w":{"dtype":"U8","shape":[1]}}"#,
            "missing field `data_offsets`",
        ),
        (
            r#"{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
            "invalid value",
        ),
        (
            r#"{"w":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}"#,
            "invalid type",
        ),
        (
            r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#,
            "trailing characters",
        ),
        (
            r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#,
            "invalid length",
        ),
        (
            r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551616]}}"#,
            "tensor 'w'",
        ),
        (
            r#"{"w":{"dtype":7,"shape":[1],"data_offsets":[0,1]}}"#,
            "invalid type",
        ),
        (
            r#"{"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#,
            "duplicate field `dtype`",
        ),
        (
            r#"{"__metadata__":{"k":1}}"#,
            "invalid type: integer `1`, expected a string",
        ),
        (r#"{"__metadata__":[]}"#, "expected a __metadata__ object"),
        (r#"{"__metadata__":"x"}"#, "expected a __metadata__ object"),
    ] {
        let err = refused(&file(header, &[0]));
        assert!(matches!(err.kind(), Error::Malformed { .. }), "{err}");
        assert_message(&err, needle);
    }
}

#[test]
fn unknown_dtypes_are_refused() {
    for code in ["F7", "f32", "float32", "Q4_0", "", "C128", "F8_E4M3FN"] {
        let header = format!(r#"{{"w":{{"dtype":"{code}","shape":[1],"data_offsets":[0,1]}}}}"#);
        let err = refused(&file(&header, &[0]));
        assert!(
            matches!(err.kind(), Error::UnknownDType(c) if c == code),
            "{err}"
        );
        assert_eq!(err.tensor(), Some("w"));
    }
    // serde would read an enum from `{"U8": null}`, and so does the reference; a dtype is a string.
    let header = r#"{"w":{"dtype":{"U8":null},"shape":[1],"data_offsets":[0,1]}}"#;
    let err = open_bytes_with(&file(header, &[0]), true).unwrap_err();
    assert_message(&err, "invalid type: map, expected a string");
}

#[test]
fn ranges_must_tile_the_data_section() {
    let t = |name: &str, begin: u64, end: u64| {
        format!(
            r#""{name}":{{"dtype":"U8","shape":[{}],"data_offsets":[{begin},{end}]}}"#,
            end.saturating_sub(begin)
        )
    };
    // A gap between two tensors.
    let header = format!("{{{},{}}}", t("a", 0, 4), t("b", 8, 12));
    let err = refused(&file(&header, &[0; 12]));
    assert_message(&err, "leave bytes 4..8 of the data section to no tensor");
    assert_eq!(err.tensor(), Some("b"));
    // Not starting at 0.
    let err = refused(&file(&format!("{{{}}}", t("a", 2, 4)), &[0; 4]));
    assert_message(&err, "leave bytes 0..2");
    // Overlap.
    let header = format!("{{{},{}}}", t("a", 0, 8), t("b", 4, 12));
    let err = refused(&file(&header, &[0; 12]));
    assert!(
        matches!(err.kind(), Error::Overlap { first, second } if first == "a" && second == "b"),
        "{err}"
    );
    // Two tensors on the same bytes.
    let header = format!("{{{},{}}}", t("a", 0, 4), t("b", 0, 4));
    assert!(matches!(
        refused(&file(&header, &[0; 4])).kind(),
        Error::Overlap { .. }
    ));
    // Past the end of the file, with a length that matches its (huge) shape.
    let header = format!("{{{}}}", t("a", 0, 1 << 60));
    let err = refused(&file(&header, &[0; 4]));
    assert!(
        matches!(err.kind(), Error::OutOfBounds { length, .. } if *length == 1 << 60),
        "{err}"
    );
    assert_eq!(err.tensor(), Some("a"));
    // Trailing bytes after the last tensor.
    let err = refused(&file(&format!("{{{}}}", t("a", 0, 4)), &[0; 6]));
    assert_message(&err, "the last 2 bytes of the file belong to no tensor");
    // Data but no tensors.
    let err = refused(&file("{}", &[0; 3]));
    assert_message(&err, "belong to no tensor");
    // Ending before beginning.
    let header = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#;
    let err = refused(&file(header, &[0; 4]));
    assert_message(&err, "data_offsets [4, 0] end before they begin");
    // Zero-size tensors may sit anywhere in the tiling, including at the end.
    let header = format!("{{{},{},{}}}", t("z", 4, 4), t("a", 0, 4), t("y", 0, 0));
    let reader = open_bytes_with(&file(&header, &[0; 4]), true).unwrap();
    assert_eq!(reader.names(), ["a", "y", "z"]);
}

#[test]
fn lengths_must_match_shapes() {
    let header = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    let err = refused(&file(header, &[0; 8]));
    assert!(
        matches!(
            err.kind(),
            Error::LengthMismatch {
                expected: 12,
                actual: 8,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.tensor(), Some("a"));
    // 0-d tensors hold one element.
    let header = r#"{"a":{"dtype":"F64","shape":[],"data_offsets":[0,4]}}"#;
    assert!(matches!(
        refused(&file(header, &[0; 4])).kind(),
        Error::LengthMismatch { .. }
    ));
    // Sub-byte types must fill whole bytes.
    for (dtype, numel) in [("F4", 3), ("F6_E2M3", 2), ("F6_E3M2", 5)] {
        let header =
            format!(r#"{{"a":{{"dtype":"{dtype}","shape":[{numel}],"data_offsets":[0,1]}}}}"#);
        let err = refused(&file(&header, &[0]));
        assert_message(&err, "is not a whole number of bytes");
    }
    // ... and are right when they do: 4 F6 values in 3 bytes, 6 F4 values in 3 bytes.
    let header = r#"{"a":{"dtype":"F6_E2M3","shape":[2,2],"data_offsets":[0,3]},"b":{"dtype":"F4","shape":[6],"data_offsets":[3,6]}}"#;
    open_bytes_with(&file(header, &[0; 6]), true).unwrap();
}

#[test]
fn overflowing_shapes_are_refused() {
    for (dtype, shape) in [
        ("U8", "[1099511627776,1099511627776]"),
        ("F32", "[4611686018427387904]"),
        ("F4", "[18446744073709551615]"),
        ("U8", "[0,18446744073709551615,18446744073709551615]"),
    ] {
        let header =
            format!(r#"{{"a":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,8]}}}}"#);
        let result = open_bytes_with(&file(&header, &[0; 8]), false);
        let err = result.unwrap_err();
        if shape.starts_with("[0,") {
            // The reference multiplies left to right too: 0 * huge * huge = 0 does not overflow,
            // it is just the wrong length.
            assert!(
                matches!(err.kind(), Error::LengthMismatch { expected: 0, .. }),
                "{err}"
            );
        } else {
            assert!(matches!(err.kind(), Error::ShapeOverflow(_)), "{err}");
            assert_message(&err, "overflows a 64-bit byte count");
        }
    }
}

#[test]
fn duplicate_names_are_refused_even_where_the_reference_takes_the_last() {
    // The reference keeps the last "a" and, since both claim the same bytes, opens the file.
    let header = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}"#;
    let err = open_bytes_with(&file(header, &[0; 4]), true).unwrap_err();
    assert!(
        matches!(err.kind(), Error::DuplicateName(n) if n == "a"),
        "{err}"
    );
    // The same name spelled with an escape is the same name.
    let header = r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"\u0061":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#;
    let err = open_bytes_with(&file(header, &[0; 4]), false).unwrap_err();
    assert!(matches!(err.kind(), Error::DuplicateName(_)), "{err}");
    // Metadata keys, and the metadata itself.
    let header = r#"{"__metadata__":{"k":"1","k":"2"}}"#;
    let err = open_bytes_with(&file(header, b""), true).unwrap_err();
    assert_message(&err, "duplicate __metadata__ key 'k'");
    let header = r#"{"__metadata__":{},"__metadata__":{}}"#;
    assert_message(
        &refused(&file(header, b"")),
        "duplicate field `__metadata__`",
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for header in [
        format!(r#"{{"a":{{"dtype":"U8","shape":{nested},"data_offsets":[0,0]}}}}"#),
        format!(r#"{{"__metadata__":{{"k":{nested}}}}}"#),
        format!(r#"{{"a":{nested}}}"#),
        format!("{{\"a\":{}}}", "{\"x\":".repeat(depth)),
    ] {
        let err = refused(&file(&header, b""));
        assert!(matches!(err.kind(), Error::Malformed { .. }), "{err}");
    }
    // Deep nesting in a field both readers ignore is skipped iteratively by serde_json.
    let header = format!(
        r#"{{"a":{{"dtype":"U8","shape":[0],"data_offsets":[0,0],"extra":{}}}}}"#,
        "[".repeat(100) + &"]".repeat(100)
    );
    open_bytes_with(&file(&header, b""), true).unwrap();
}

#[test]
fn a_large_header_of_zero_size_tensors_opens() {
    // 100,000 entries in a ~6 MB header: memory follows the header's size, not any claim.
    let mut header = String::from("{");
    for i in 0..100_000u32 {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{i}":{{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#
        ));
    }
    header.push('}');
    SafetensorsReader::validate_bytes(&file(&header, b"")).unwrap();
}
