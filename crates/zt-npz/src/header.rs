//! The `.npy` header: magic, version, length, and the Python dict literal that describes the
//! array.
//!
//! The literal is parsed by hand because it is tiny and fixed (`{'descr': '<f4',
//! 'fortran_order': False, 'shape': (2, 3), }` plus padding) and no crate parses it safely:
//! NumPy itself uses `ast.literal_eval`. The parser accepts exactly what `literal_eval` accepts
//! for the three keys NumPy requires (single or double quotes, any whitespace, trailing commas,
//! Python 2's `3L` integers), without recursion, escapes or any other Python syntax.

use zt_core::{DType, Error, LogicalType, Shape};

/// `\x93NUMPY`.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header (length field value) accepted: 64 KiB. NumPy writes ~128 bytes for every
/// dtype this crate reads, and `np.load` itself refuses headers over 10,000 characters.
pub const MAX_HEADER_LEN: u64 = 64 << 10;

/// Most dimensions an array may have (`NPY_MAXDIMS` in NumPy 2).
pub const MAX_DIMS: usize = 64;

const FORMAT: &str = "npy";

/// Bytes of magic, version and the widest (v2/v3) length field: enough to learn the header's
/// total length.
pub const PREAMBLE_LEN: usize = MAGIC.len() + 2 + 4;

/// What the header says about the array that follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    /// `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// Bytes before the element data: magic, version, length field and header text.
    pub data_offset: u64,
    /// The dtype string as stored (`"<f4"`).
    pub descr: String,
    pub dtype: DType,
    pub logical_type: Option<LogicalType>,
    /// The stored elements are big-endian and must be byte-swapped (per `dtype`-sized unit).
    pub big_endian: bool,
    pub fortran_order: bool,
    /// Row-major (C-order) logical shape.
    pub shape: Shape,
    /// Bytes of element data that follow the header.
    pub data_len: u64,
}

impl NpyHeader {
    /// Bytes per element: complex numbers take two storage elements.
    pub fn item_size(&self) -> u64 {
        item_size(self.dtype, self.logical_type.as_ref())
    }

    /// The stored bytes are already little-endian and C-ordered: they can be used in place.
    pub fn is_raw_layout(&self) -> bool {
        let transposed = self.fortran_order && needs_transpose(self.shape.dims());
        !self.big_endian && !transposed
    }
}

fn item_size(dtype: DType, logical_type: Option<&LogicalType>) -> u64 {
    let parts = match logical_type {
        Some(LogicalType::Complex64 | LogicalType::Complex128) => 2,
        _ => 1,
    };
    dtype.size() as u64 * parts
}

/// A Fortran-ordered array with at most one dimension longer than 1 has the same bytes in C
/// order.
pub fn needs_transpose(dims: &[u64]) -> bool {
    dims.iter().filter(|&&d| d > 1).count() > 1
}

/// The total header length (`data_offset`) from the first bytes of a `.npy` stream; `prefix`
/// may be shorter than [`PREAMBLE_LEN`] only if the stream is.
pub fn data_offset(prefix: &[u8]) -> Result<u64, Error> {
    let truncated = |needed: usize| Error::Truncated {
        what: "npy header".into(),
        needed: needed as u64,
        available: prefix.len() as u64,
    };
    if prefix.len() < MAGIC.len() || &prefix[..MAGIC.len()] != MAGIC {
        return Err(Error::BadMagic {
            format: "npy",
            expected: MAGIC,
            found: prefix[..prefix.len().min(MAGIC.len())].to_vec(),
        });
    }
    let version = prefix.get(6..8).ok_or_else(|| truncated(8))?;
    let (len_field, header_len) = match (version[0], version[1]) {
        (1, 0) => {
            let b = prefix.get(8..10).ok_or_else(|| truncated(10))?;
            (2, u64::from(u16::from_le_bytes([b[0], b[1]])))
        }
        (2 | 3, 0) => {
            let b = prefix.get(8..12).ok_or_else(|| truncated(12))?;
            (4, u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        }
        (major, minor) => {
            return Err(Error::Unsupported(format!(
                "npy format version {major}.{minor} (known: 1.0, 2.0, 3.0)"
            )));
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(Error::LimitExceeded {
            what: "npy header".into(),
            size: header_len,
            limit: MAX_HEADER_LEN,
        });
    }
    Ok(8 + len_field + header_len)
}

/// Parses the header at the start of `bytes` (which must hold at least the whole header; the
/// element data need not follow).
pub fn parse(bytes: &[u8]) -> Result<NpyHeader, Error> {
    let data_offset = data_offset(bytes)?;
    let text = bytes
        .get(..data_offset as usize)
        .ok_or_else(|| Error::Truncated {
            what: "npy header".into(),
            needed: data_offset,
            available: bytes.len() as u64,
        })?;
    let version = (bytes[6], bytes[7]);
    let len_field = if version.0 == 1 { 2 } else { 4 };
    let literal = &text[8 + len_field..];
    // Versions 1 and 2 are latin-1, 3 is UTF-8. Every accepted header is ASCII, so bytes are
    // parsed directly; only string contents may hold other bytes, and those are checked there.
    let fields = Literal::new(literal).dict()?;
    let (dtype, logical_type, big_endian) = parse_descr(&fields.descr)?;
    let shape = Shape::new(fields.shape);
    let data_len = shape
        .numel()?
        .checked_mul(item_size(dtype, logical_type.as_ref()))
        .ok_or_else(|| Error::ShapeOverflow(shape.0.clone()))?;
    Ok(NpyHeader {
        version,
        data_offset,
        descr: fields.descr,
        dtype,
        logical_type,
        big_endian,
        fortran_order: fields.fortran_order,
        shape,
        data_len,
    })
}

/// Maps a NumPy dtype string to the storage dtype, the logical type, and whether the stored
/// bytes are big-endian. Everything but plain numbers, bools and complex numbers is refused.
pub fn parse_descr(descr: &str) -> Result<(DType, Option<LogicalType>, bool), Error> {
    // '=' and '|' (and no prefix) mean the writer's native order; NumPy reads them as the
    // reading machine's, which is little-endian wherever ztensor runs.
    let (big_endian, code) = match descr.as_bytes().first() {
        Some(b'>') => (true, &descr[1..]),
        Some(b'<' | b'=' | b'|') => (false, &descr[1..]),
        _ => (false, descr),
    };
    let unsupported = |what: &str| {
        Err(Error::Unsupported(format!(
            "npy dtype '{descr}': {what} arrays are not tensors"
        )))
    };
    let (dtype, logical) = match code {
        "f2" => (DType::F16, None),
        "f4" => (DType::F32, None),
        "f8" => (DType::F64, None),
        "i1" => (DType::I8, None),
        "i2" => (DType::I16, None),
        "i4" => (DType::I32, None),
        "i8" => (DType::I64, None),
        "u1" => (DType::U8, None),
        "u2" => (DType::U16, None),
        "u4" => (DType::U32, None),
        "u8" => (DType::U64, None),
        "b1" => (DType::Bool, None),
        "c8" => (DType::F32, Some(LogicalType::Complex64)),
        "c16" => (DType::F64, Some(LogicalType::Complex128)),
        _ => {
            return match code.as_bytes().first() {
                Some(b'O') => Err(Error::Unsupported(format!(
                    "npy dtype '{descr}': object arrays hold pickled Python objects, which are \
                     never unpickled"
                ))),
                Some(b'U' | b'S' | b'a') => unsupported("string"),
                Some(b'V') => unsupported("void (raw or structured)"),
                Some(b'M' | b'm') => unsupported("datetime"),
                Some(b'f' | b'c') => unsupported("extended-precision"),
                _ => Err(Error::malformed(
                    FORMAT,
                    format!("unknown dtype descriptor '{descr}'"),
                )),
            };
        }
    };
    Ok((dtype, logical, big_endian && dtype.size() > 1))
}

/// The three entries NumPy requires in the header dict.
struct Fields {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A cursor over the header's dict literal.
struct Literal<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Literal<'a> {
    fn new(text: &'a [u8]) -> Literal<'a> {
        Literal { text, pos: 0 }
    }

    fn error(&self, what: impl std::fmt::Display) -> Error {
        Error::malformed(
            FORMAT,
            format!(
                "header {what} at byte {} of \"{}\"",
                self.pos,
                self.text[..self.text.len().min(200)].escape_ascii()
            ),
        )
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Error> {
        self.skip_whitespace();
        if self.peek() != Some(byte) {
            return Err(self.error(format_args!("expects '{}'", byte as char)));
        }
        self.pos += 1;
        Ok(())
    }

    /// After skipping whitespace: consumes `byte` if it is next.
    fn accept(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn dict(mut self) -> Result<Fields, Error> {
        self.expect(b'{')?;
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        while !self.accept(b'}') {
            let key = self.string()?;
            self.expect(b':')?;
            let duplicate = match key.as_str() {
                "descr" => {
                    self.skip_whitespace();
                    if self.peek() == Some(b'[') {
                        return Err(Error::Unsupported(
                            "npy structured dtype (a list of fields): not a tensor".into(),
                        ));
                    }
                    descr.replace(self.string()?).is_some()
                }
                "fortran_order" => fortran_order.replace(self.bool()?).is_some(),
                "shape" => shape.replace(self.tuple()?).is_some(),
                other => return Err(self.error(format_args!("has unexpected key '{other}'"))),
            };
            if duplicate {
                return Err(self.error(format_args!("repeats key '{key}'")));
            }
            if !self.accept(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        self.skip_whitespace();
        if self.pos != self.text.len() {
            return Err(self.error("has text after the dict"));
        }
        match (descr, fortran_order, shape) {
            (Some(descr), Some(fortran_order), Some(shape)) => Ok(Fields {
                descr,
                fortran_order,
                shape,
            }),
            _ => Err(self.error("lacks one of 'descr', 'fortran_order', 'shape'")),
        }
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> Result<String, Error> {
        self.skip_whitespace();
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.error("expects a quoted string")),
        };
        let start = self.pos + 1;
        let len = self.text[start..]
            .iter()
            .position(|&b| b == quote || b == b'\\' || b == b'\n')
            .filter(|&n| self.text[start + n] == quote)
            .ok_or_else(|| self.error("has an unterminated or escaped string"))?;
        self.pos = start + len + 1;
        String::from_utf8(self.text[start..start + len].to_vec())
            .map_err(|_| self.error("has a string that is not UTF-8"))
    }

    fn bool(&mut self) -> Result<bool, Error> {
        self.skip_whitespace();
        for (word, value) in [(&b"True"[..], true), (b"False", false)] {
            let end = self.pos + word.len();
            let boundary = !self
                .text
                .get(end)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
            if self.text.get(self.pos..end) == Some(word) && boundary {
                self.pos = end;
                return Ok(value);
            }
        }
        Err(self.error("expects True or False"))
    }

    /// `()`, `(3,)`, `(2, 3)` or `(2, 3,)`: Python's tuple syntax (`(3)` is not a tuple).
    fn tuple(&mut self) -> Result<Vec<u64>, Error> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        let mut trailing_comma = false;
        while !self.accept(b')') {
            if dims.len() == MAX_DIMS {
                return Err(self.error(format_args!("has more than {MAX_DIMS} dimensions")));
            }
            dims.push(self.dimension()?);
            trailing_comma = self.accept(b',');
            if !trailing_comma {
                self.expect(b')')?;
                break;
            }
        }
        if dims.len() == 1 && !trailing_comma {
            return Err(self.error("has a shape '(n)' that is not a tuple"));
        }
        Ok(dims)
    }

    /// A non-negative decimal integer (Python 2's `L` suffix allowed) that fits `u64`.
    fn dimension(&mut self) -> Result<u64, Error> {
        self.skip_whitespace();
        if self.peek() == Some(b'-') {
            return Err(self.error("has a negative dimension"));
        }
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(digit) = self.peek().filter(u8::is_ascii_digit) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                .ok_or_else(|| self.error("has a dimension larger than 2^64"))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits == 0 {
            return Err(self.error("expects a dimension"));
        }
        if digits > 1 && self.text[start] == b'0' {
            return Err(self.error("has a dimension with a leading zero"));
        }
        if self.peek() == Some(b'L') {
            self.pos += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(literal: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(literal.len() as u16).to_le_bytes());
        out.extend_from_slice(literal.as_bytes());
        out
    }

    fn header(literal: &str) -> Result<NpyHeader, Error> {
        parse(&npy(literal))
    }

    #[test]
    fn numpy_headers_parse() {
        let literal = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }    \n";
        let h = header(literal).unwrap();
        assert_eq!(
            (h.dtype, h.shape.dims(), h.data_len),
            (DType::F32, &[2, 3][..], 24)
        );
        assert_eq!(h.data_offset, 10 + literal.len() as u64);
        assert!(h.is_raw_layout());
        let h = header("{\"shape\":(),\"fortran_order\":True,\"descr\":\">c16\"}").unwrap();
        assert_eq!(h.shape.dims(), &[] as &[u64]);
        assert_eq!(h.logical_type, Some(LogicalType::Complex128));
        assert!(h.big_endian && h.fortran_order && !h.is_raw_layout());
        let h = header("{'descr': '|b1', 'fortran_order': False, 'shape': (3L, 0L,)}").unwrap();
        assert_eq!((h.shape.dims(), h.data_len), (&[3, 0][..], 0));
        assert!(
            !header("{'descr': '>i1', 'fortran_order': False, 'shape': (3,)}")
                .unwrap()
                .big_endian
        );
        // Fortran order over a single long dimension is already C order.
        assert!(
            header("{'descr': '<f8', 'fortran_order': True, 'shape': (1, 5, 1)}")
                .unwrap()
                .is_raw_layout()
        );
    }

    #[test]
    fn malformed_literals_are_refused() {
        for (literal, needle) in [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)",
                "expects '}'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}}",
                "text after",
            ),
            ("{'descr': '<f4', 'fortran_order': False}", "lacks"),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}",
                "repeats",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}",
                "True or False",
            ),
            (
                "{'descr': '<f4', 'fortran_order': Falsey, 'shape': ()}",
                "True or False",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}",
                "not a tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "negative",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
                "2^64",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (01,)}",
                "leading zero",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': ((1,),)}",
                "expects a dimension",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': {}}",
                "expects '('",
            ),
            (
                "{'descr': '<f\\x34', 'fortran_order': False, 'shape': ()}",
                "escaped",
            ),
            (
                "{'descr: '<f4', 'fortran_order': False, 'shape': ()}",
                "expects ':'",
            ),
            (
                "{'descr': '<f4', 'extra': 1, 'fortran_order': False, 'shape': ()}",
                "unexpected key",
            ),
            (
                "{'descr': '<x4', 'fortran_order': False, 'shape': ()}",
                "unknown dtype",
            ),
            ("['descr']", "expects '{'"),
            ("", "expects '{'"),
        ] {
            let err = header(literal).unwrap_err();
            assert!(err.to_string().contains(needle), "{literal}: {err}");
        }
        let deep = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}) }}",
            "1, ".repeat(65)
        );
        assert!(
            header(&deep)
                .unwrap_err()
                .to_string()
                .contains("more than 64")
        );
        let overflow =
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296)}";
        assert!(matches!(header(overflow), Err(Error::ShapeOverflow(_))));
    }

    #[test]
    fn non_tensor_dtypes_are_refused() {
        for (descr, needle) in [
            ("|O", "never unpickled"),
            ("<U5", "string"),
            ("|S3", "string"),
            ("|V2", "void"),
            ("<M8[ns]", "datetime"),
            ("<f16", "extended"),
        ] {
            let literal = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ()}}");
            let err = header(&literal).unwrap_err();
            assert!(
                matches!(err, Error::Unsupported(ref m) if m.contains(needle)),
                "{err}"
            );
        }
        let structured = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}";
        assert!(
            header(structured)
                .unwrap_err()
                .to_string()
                .contains("structured")
        );
    }

    #[test]
    fn preamble_checks() {
        assert!(matches!(
            data_offset(b"\x93NUMPX\x01\x00"),
            Err(Error::BadMagic { .. })
        ));
        assert!(matches!(
            data_offset(b"\x93NUMPY\x01"),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            data_offset(b"\x93NUMPY\x04\x00\0\0"),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            data_offset(b"\x93NUMPY\x02\x00\xff\xff\xff\xff"),
            Err(Error::LimitExceeded { .. })
        ));
        assert_eq!(
            data_offset(b"\x93NUMPY\x03\x00\x10\x00\x00\x00").unwrap(),
            28
        );
        let mut short = npy("{'descr': '<f4', 'fortran_order': False, 'shape': ()}");
        short.pop();
        assert!(matches!(parse(&short), Err(Error::Truncated { .. })));
    }
}
