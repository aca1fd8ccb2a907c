//! The manifest's CBOR, decoded strictly: RFC 8949 core deterministic encoding only.
//!
//! zTensor 2.x requires the manifest to be deterministic CBOR and its reader rejects every
//! other encoding of the same data (shortest heads, definite lengths, map keys in bytewise order
//! of their encodings and no duplicates, no tags, floats at their shortest exact width, NaN only
//! as `f9 7e00`, nesting at most [`MAX_DEPTH`], no trailing bytes). These are properties of the
//! bytes, which `ciborium`'s deserializer normalises away, so this module walks the items itself:
//! `ciborium-ll` decodes each head, and the head's width, the raw float bits and the encoded key
//! bytes are checked against the input. Every length is checked against the bytes left before
//! anything is allocated, and nesting is bounded before recursing, so hostile input can neither
//! exhaust memory nor the stack.

use ciborium_ll::{Decoder, Header};
use half::f16;
use zt_core::{Error, Value};

/// Deepest nesting of arrays and maps, the root container counting as 1 (what zTensor 2.1.2
/// accepts: a root map holding an attribute map holding 30 nested arrays is the limit).
pub const MAX_DEPTH: usize = 32;

/// Most items preallocated for one array or map. A count is checked against the bytes left, but
/// 32 nested containers can each claim (almost) all of them: reserving every claim up front
/// would cost depth x 32 bytes per input byte before the first item is read. Beyond this the
/// vector grows only as items actually arrive, so memory follows the input.
const PREALLOC_ITEMS: usize = 256;

/// The simple values the manifest may hold: false, true, null.
const SIMPLE_FALSE: u8 = 20;
const SIMPLE_TRUE: u8 = 21;
const SIMPLE_NULL: u8 = 22;

/// The one NaN deterministic encoding allows.
const CANONICAL_NAN: [u8; 3] = [0xf9, 0x7e, 0x00];

/// Decodes one deterministic CBOR item that spans all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, Error> {
    let mut parser = Parser {
        input: bytes,
        pos: 0,
    };
    let value = parser.item(0)?;
    if parser.pos != bytes.len() {
        return Err(syntax(
            parser.pos,
            format!(
                "{} trailing bytes after the manifest",
                bytes.len() - parser.pos
            ),
        ));
    }
    Ok(value)
}

fn syntax(pos: usize, msg: impl std::fmt::Display) -> Error {
    Error::manifest(format!("CBOR at byte {pos}: {msg}"))
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Decodes the head at the current position and checks it is the shortest one for its
    /// argument. Returns the header and the head's length in bytes.
    fn head(&mut self) -> Result<(Header, usize), Error> {
        let start = self.pos;
        let rest = &self.input[start..];
        let mut decoder = Decoder::from(rest);
        let header = decoder.pull().map_err(|e| match e {
            ciborium_ll::Error::Io(_) => syntax(start, "unexpected end of the manifest"),
            ciborium_ll::Error::Syntax(_) => syntax(start, "reserved head byte"),
        })?;
        let head_len = decoder.offset();
        let argument = match header {
            Header::Positive(n) | Header::Negative(n) | Header::Tag(n) => Some(n),
            Header::Bytes(Some(n))
            | Header::Text(Some(n))
            | Header::Array(Some(n))
            | Header::Map(Some(n)) => Some(n as u64),
            Header::Bytes(None) | Header::Text(None) | Header::Array(None) | Header::Map(None) => {
                return Err(syntax(start, "indefinite length (not deterministic CBOR)"));
            }
            Header::Break => return Err(syntax(start, "unexpected break code")),
            Header::Float(_) | Header::Simple(_) => None,
        };
        if let Some(n) = argument
            && head_len != shortest_head_len(n)
        {
            return Err(syntax(start, "non-shortest head (not deterministic CBOR)"));
        }
        self.pos += head_len;
        Ok((header, head_len))
    }

    /// The next `n` bytes of the input.
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(syntax(
                self.pos,
                format!(
                    "{what} of {n} bytes runs past the end ({} bytes left)",
                    self.remaining()
                ),
            ));
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// A count of items, each at least `min_bytes` long, checked against the input left so that
    /// allocating for it is safe.
    fn count(&self, n: usize, min_bytes: usize, what: &str) -> Result<usize, Error> {
        match n.checked_mul(min_bytes) {
            Some(needed) if needed <= self.remaining() => Ok(n),
            _ => Err(syntax(
                self.pos,
                format!(
                    "{what} of {n} entries cannot fit in the {} bytes left",
                    self.remaining()
                ),
            )),
        }
    }

    /// One item; `depth` is the number of containers around it.
    fn item(&mut self, depth: usize) -> Result<Value, Error> {
        let start = self.pos;
        let (header, head_len) = self.head()?;
        Ok(match header {
            Header::Positive(n) => Value::Integer(n.into()),
            Header::Negative(n) => Value::Integer(-1 - i128::from(n)),
            Header::Bytes(Some(n)) => Value::Bytes(self.take(n, "byte string")?.to_vec()),
            Header::Text(Some(n)) => {
                let bytes = self.take(n, "text string")?;
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| syntax(start, "text string is not valid UTF-8"))?;
                Value::Text(text.to_owned())
            }
            Header::Array(Some(n)) => {
                let depth = self.enter(depth, start)?;
                let n = self.count(n, 1, "array")?;
                let mut items = Vec::with_capacity(n.min(PREALLOC_ITEMS));
                for _ in 0..n {
                    items.push(self.item(depth)?);
                }
                Value::Array(items)
            }
            Header::Map(Some(n)) => {
                let depth = self.enter(depth, start)?;
                self.map(n, depth)?
            }
            Header::Float(value) => self.float(value, start, head_len)?,
            Header::Simple(simple) if head_len == 1 => match simple {
                SIMPLE_FALSE => Value::Bool(false),
                SIMPLE_TRUE => Value::Bool(true),
                SIMPLE_NULL => Value::Null,
                other => return Err(syntax(start, format!("unsupported simple value {other}"))),
            },
            Header::Simple(other) => {
                return Err(syntax(start, format!("unsupported simple value {other}")));
            }
            Header::Tag(tag) => {
                return Err(syntax(start, format!("tag {tag}: tags are not permitted")));
            }
            Header::Bytes(None)
            | Header::Text(None)
            | Header::Array(None)
            | Header::Map(None)
            | Header::Break => unreachable!("refused by head()"),
        })
    }

    fn enter(&self, depth: usize, start: usize) -> Result<usize, Error> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(syntax(
                start,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(depth)
    }

    /// A map's entries: keys must come in strictly increasing bytewise order of their encodings
    /// (which also rules out duplicates).
    fn map(&mut self, n: usize, depth: usize) -> Result<Value, Error> {
        let n = self.count(n, 2, "map")?;
        let mut entries = Vec::with_capacity(n.min(PREALLOC_ITEMS));
        let mut previous_key: Option<&[u8]> = None;
        for _ in 0..n {
            let key_start = self.pos;
            let key = self.item(depth)?;
            let encoded_key = &self.input[key_start..self.pos];
            if let Some(previous) = previous_key {
                match previous.cmp(encoded_key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Err(syntax(key_start, format!("duplicate map key {key:?}")));
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(syntax(
                            key_start,
                            format!("map key {key:?} out of canonical order"),
                        ));
                    }
                }
            }
            previous_key = Some(encoded_key);
            let value = self.item(depth)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }

    /// A float must use the shortest width that holds it exactly; NaN only as `f9 7e00`.
    fn float(&self, value: f64, start: usize, head_len: usize) -> Result<Value, Error> {
        if value.is_nan() {
            if self.input[start..start + head_len] != CANONICAL_NAN {
                return Err(syntax(start, "non-canonical NaN (only f9 7e00 is allowed)"));
            }
            return Ok(Value::Float(value));
        }
        let fits_f16 = f16::from_f64(value).to_f64().to_bits() == value.to_bits();
        let fits_f32 = f64::from(value as f32).to_bits() == value.to_bits();
        let shortest = if fits_f16 {
            3
        } else if fits_f32 {
            5
        } else {
            9
        };
        if head_len != shortest {
            return Err(syntax(
                start,
                format!("float {value} not at its shortest width"),
            ));
        }
        Ok(Value::Float(value))
    }
}

/// Bytes of the shortest head for an argument (RFC 8949 §4.2.1).
fn shortest_head_len(argument: u64) -> usize {
    match argument {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(bytes: &[u8]) -> String {
        decode(bytes).unwrap_err().to_string()
    }

    #[test]
    fn decodes_the_reference_test_vector() {
        let manifest = b"\xa1\x67objects\xa1\x61t\xa3\x65parts\xa1\x64data\xa2\x64blob\x82\x19\x10\x00\x08\x65dtype\x62u8\x65shape\x81\x08\x66layout\x65dense";
        let value = decode(manifest).unwrap();
        let Value::Map(root) = value else {
            panic!("root is a map")
        };
        assert_eq!(root[0].0, Value::Text("objects".into()));
    }

    #[test]
    fn values() {
        assert_eq!(decode(&[0x17]).unwrap(), Value::Integer(23));
        assert_eq!(decode(&[0x38, 0x63]).unwrap(), Value::Integer(-100));
        assert_eq!(
            decode(&[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            Value::Integer(-(1i128 << 64))
        );
        assert_eq!(decode(&[0xf9, 0x3e, 0x00]).unwrap(), Value::Float(1.5));
        assert_eq!(
            decode(&[0xf9, 0x7c, 0x00]).unwrap(),
            Value::Float(f64::INFINITY)
        );
        assert!(matches!(decode(&CANONICAL_NAN).unwrap(), Value::Float(f) if f.is_nan()));
        assert_eq!(decode(&[0xf5]).unwrap(), Value::Bool(true));
        assert_eq!(decode(&[0xf6]).unwrap(), Value::Null);
        assert_eq!(decode(&[0x42, 1, 2]).unwrap(), Value::Bytes(vec![1, 2]));
    }

    #[test]
    fn refuses_what_is_not_deterministic() {
        assert!(err(&[0x18, 0x05]).contains("non-shortest head"));
        assert!(err(&[0x9f, 0x01, 0xff]).contains("indefinite length"));
        assert!(err(&[0xc1, 0x01]).contains("tags are not permitted"));
        assert!(err(&[0xf7]).contains("unsupported simple value 23"));
        assert!(err(&[0xf8, 0x20]).contains("unsupported simple value"));
        assert!(err(&[0xf9, 0x7e, 0x01]).contains("non-canonical NaN"));
        assert!(err(&[0xfa, 0x7f, 0xc0, 0, 0]).contains("non-canonical NaN"));
        assert!(err(&[0xfa, 0x3f, 0xc0, 0, 0]).contains("not at its shortest width"));
        assert!(err(&[0x01, 0x02]).contains("1 trailing bytes"));
        assert!(err(&[0xa2, 0x61, b'b', 1, 0x61, b'a', 2]).contains("out of canonical order"));
        assert!(err(&[0xa2, 0x61, b'a', 1, 0x61, b'a', 2]).contains("duplicate map key"));
        assert!(err(&[0x62, 0xff, 0xfe]).contains("not valid UTF-8"));
        assert!(err(&[0x1c]).contains("reserved head byte"));
        assert!(err(&[0xff]).contains("unexpected break"));
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        // An array claiming 2^32 items in a 5-byte input.
        assert!(err(&[0x9a, 0xff, 0xff, 0xff, 0xff]).contains("cannot fit"));
        assert!(err(&[0x5a, 0xff, 0xff, 0xff, 0xff]).contains("runs past the end"));
        assert!(err(&[0x19, 0x01]).contains("unexpected end"));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut ok = vec![0x81; MAX_DEPTH];
        ok.push(0x01);
        assert!(decode(&ok).is_ok());
        let mut deep = vec![0x81; MAX_DEPTH + 1];
        deep.push(0x01);
        assert!(err(&deep).contains("nesting deeper than 32"));
        // A bomb far deeper than the stack could take.
        let bomb = vec![0x81; 1_000_000];
        assert!(err(&bomb).contains("nesting deeper"));
    }
}
