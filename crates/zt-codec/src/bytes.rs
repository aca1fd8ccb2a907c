//! Little helpers for writing and reading the frame's integers: LEB128 varints and fixed-width
//! little-endian words, with every read bounds-checked against the input.

use zt_core::{Error, Result};

/// The format name used in every error this crate raises.
pub(crate) const FORMAT: &str = "ztc";

pub(crate) fn malformed(reason: impl Into<String>) -> Error {
    Error::malformed(FORMAT, reason)
}

/// Appends `v` as an unsigned LEB128 varint (1..=10 bytes).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A forward reader over a byte slice; every read fails cleanly at the end of the input.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| malformed(format!("{what}: unexpected end of data")))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn u32_le(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(malformed(format!(
                "{what}: needs {n} bytes but only {} remain",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes that fits in a u64.
    pub(crate) fn varint(&mut self, what: &str) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(malformed(format!("{what}: varint overflows 64 bits")));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed(format!("{what}: varint longer than 10 bytes")))
    }

    /// A varint that must not exceed `max`, returned as usize.
    pub(crate) fn varint_max(&mut self, max: u64, what: &str) -> Result<usize> {
        let v = self.varint(what)?;
        if v > max {
            return Err(malformed(format!("{what} {v} exceeds the limit {max}")));
        }
        usize::try_from(v).map_err(|_| malformed(format!("{what} {v} does not fit in memory")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut r = Reader::new(&b);
            assert_eq!(r.varint("v").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
        // 10th byte carrying more than one bit overflows.
        let over = [0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>();
        assert!(Reader::new(&over).varint("v").is_err());
        assert!(Reader::new(&[0x80; 11]).varint("v").is_err());
        assert!(Reader::new(&[0x80]).varint("v").is_err());
        assert!(Reader::new(&[5]).varint_max(4, "v").is_err());
    }
}
