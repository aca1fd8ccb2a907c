//! A minimal protobuf field walker for the two outer messages (`ModelProto`, `GraphProto`).
//!
//! prost decodes whole messages, and a whole `ModelProto` holds the graph's nodes, functions and
//! training info, none of which a tensor reader needs. Decoding them would cost time and memory
//! (an empty 2-byte `NodeProto` becomes a ~200-byte struct: a hostile file could make the
//! decoder allocate 100x its size), so the reader walks the outer messages field by field here
//! and hands prost only the messages it needs (`TensorProto`, `SparseTensorProto`, and the small
//! model-level ones). Walking is iterative, bounded by the input and allocates nothing.

use std::ops::Range;

use zt_core::Error;

use crate::FORMAT;

/// The value of one field, as its wire type carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireValue {
    Varint(u64),
    Fixed64,
    Fixed32,
    /// A length-delimited payload: its byte range in the walked slice's coordinates (that is,
    /// offset by the `base` given to [`Fields::new`]).
    Bytes(Range<usize>),
    /// A (deprecated) group, already skipped.
    Group,
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub number: u32,
    pub value: WireValue,
}

impl Field {
    /// The payload of a length-delimited field, or an error naming `what` it should have been.
    pub fn bytes(&self, what: &str) -> Result<Range<usize>, Error> {
        match &self.value {
            WireValue::Bytes(range) => Ok(range.clone()),
            other => Err(wrong_type(what, other)),
        }
    }

    pub fn varint(&self, what: &str) -> Result<u64, Error> {
        match self.value {
            WireValue::Varint(v) => Ok(v),
            ref other => Err(wrong_type(what, other)),
        }
    }
}

fn wrong_type(what: &str, value: &WireValue) -> Error {
    let kind = match value {
        WireValue::Varint(_) => "a varint",
        WireValue::Fixed64 => "a 64-bit value",
        WireValue::Fixed32 => "a 32-bit value",
        WireValue::Bytes(_) => "a length-delimited value",
        WireValue::Group => "a group",
    };
    Error::malformed(FORMAT, format!("{what} is encoded as {kind}"))
}

/// Iterates over the fields of one message: `bytes` is the message, `base` the offset of its
/// first byte in the coordinates the caller wants [`WireValue::Bytes`] ranges in.
pub struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    pub fn new(bytes: &'a [u8], base: usize) -> Fields<'a> {
        Fields {
            bytes,
            pos: 0,
            base,
            failed: false,
        }
    }

    fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::malformed(
            FORMAT,
            format!(
                "protobuf field at offset {}: {reason}",
                self.base + self.pos
            ),
        )
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // The tenth byte may only carry the top bit of a 64-bit value.
                if shift == 63 && byte > 1 {
                    return Err(self.error("varint overflows 64 bits"));
                }
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// Field number and wire type of the next key.
    fn key(&mut self) -> Result<(u32, u8), Error> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(self.error(format!("invalid field number {number}")));
        }
        Ok((number as u32, (key & 7) as u8))
    }

    fn advance(&mut self, n: u64) -> Result<Range<usize>, Error> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(Error::Truncated {
                what: format!("protobuf field at offset {}", self.base + self.pos),
                needed: n,
                available: left,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(self.base + start..self.base + self.pos)
    }

    /// The value of a field whose key was just read.
    fn value(&mut self, wire_type: u8) -> Result<WireValue, Error> {
        Ok(match wire_type {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.advance(8)?;
                WireValue::Fixed64
            }
            2 => {
                let len = self.varint()?;
                WireValue::Bytes(self.advance(len)?)
            }
            3 => {
                self.skip_group()?;
                WireValue::Group
            }
            5 => {
                self.advance(4)?;
                WireValue::Fixed32
            }
            4 => return Err(self.error("end of a group that was never started")),
            other => return Err(self.error(format!("invalid wire type {other}"))),
        })
    }

    /// Skips the fields of a group up to its end marker, counting nesting instead of recursing.
    fn skip_group(&mut self) -> Result<(), Error> {
        let mut depth = 1u64;
        while depth > 0 {
            let (_, wire_type) = self.key()?;
            match wire_type {
                3 => depth += 1,
                4 => depth -= 1,
                other => {
                    self.value(other)?;
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let field = self.key().and_then(|(number, wire_type)| {
            Ok(Field {
                number,
                value: self.value(wire_type)?,
            })
        });
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bytes: &[u8]) -> Result<Vec<Field>, Error> {
        Fields::new(bytes, 100).collect()
    }

    #[test]
    fn walks_every_wire_type() {
        // 1: varint 300; 2: bytes "hi"; 3: fixed64; 4: fixed32; 5: group {6: varint 1}.
        let msg = [
            0x08, 0xac, 0x02, 0x12, 2, b'h', b'i', 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x25, 0, 0, 0, 0,
            0x2b, 0x30, 1, 0x2c,
        ];
        let f = fields(&msg).unwrap();
        assert_eq!(f[0].varint("x").unwrap(), 300);
        assert_eq!(f[1].bytes("x").unwrap(), 105..107);
        assert_eq!(f[2].value, WireValue::Fixed64);
        assert_eq!(f[3].value, WireValue::Fixed32);
        assert_eq!(f[4].value, WireValue::Group);
        assert!(f[0].bytes("graph").is_err());
    }

    #[test]
    fn refuses_damage() {
        assert!(fields(&[0x08]).is_err()); // varint missing
        assert!(fields(&[0x12, 5, 1]).is_err()); // payload past the end
        assert!(fields(&[0x00, 0]).is_err()); // field number 0
        assert!(fields(&[0x0f]).is_err()); // wire type 7
        assert!(fields(&[0x0c]).is_err()); // stray end group
        assert!(fields(&[0x0b, 0x0b, 0x0c]).is_err()); // unterminated group
        assert!(
            fields(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .is_err()
        );
        // Deep nesting is counted, not recursed.
        let mut deep = vec![0x0b; 1 << 20];
        deep.extend(vec![0x0c; 1 << 20]);
        assert_eq!(fields(&deep).unwrap().len(), 1);
    }
}
