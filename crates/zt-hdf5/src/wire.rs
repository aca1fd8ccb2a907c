//! The replies of isolated children: what the probe learned about the file (or its error), and
//! a read's error, as bytes through a pipe.
//!
//! The child ran libhdf5 on an untrusted file, which may have corrupted the child's memory
//! without crashing it: a reply is input like the file itself. Every count is bounded by the
//! bytes left, nesting is bounded, and the parent checks what it rebuilds (ranges against its
//! own map) as it would check the file.

use zt_core::{Attributes, ByteCursor, Error, Value};

use crate::FORMAT;

/// Deepest nesting of values and error contexts decoded.
const MAX_DEPTH: usize = 32;

/// A reply being written (in the child).
#[derive(Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    pub(crate) fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    pub(crate) fn attributes(&mut self, attributes: &Attributes) {
        self.u64(attributes.len() as u64);
        for (key, value) in attributes {
            self.str(key);
            self.value(value);
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.u8(0),
            Value::Bool(b) => {
                self.u8(1);
                self.u8(u8::from(*b));
            }
            Value::Integer(i) => {
                self.u8(2);
                self.0.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                self.u8(3);
                self.u64(f.to_bits());
            }
            Value::Text(text) => {
                self.u8(4);
                self.str(text);
            }
            Value::Bytes(bytes) => {
                self.u8(5);
                self.bytes(bytes);
            }
            Value::Array(values) => {
                self.u8(6);
                self.u64(values.len() as u64);
                for value in values {
                    self.value(value);
                }
            }
            Value::Map(entries) => {
                self.u8(7);
                self.u64(entries.len() as u64);
                for (key, value) in entries {
                    self.value(key);
                    self.value(value);
                }
            }
            Value::Tag(tag, value) => {
                self.u8(8);
                self.u64(*tag);
                self.value(value);
            }
        }
    }

    /// An error of the kinds opening and reading produce; others travel as their message.
    pub(crate) fn error(&mut self, error: &Error) {
        match error {
            Error::InTensor { name, source } => {
                self.u8(0);
                self.str(name);
                self.error(source);
            }
            Error::Malformed { format, reason } if *format == FORMAT => {
                self.u8(1);
                self.str(reason);
            }
            Error::OutOfBounds {
                component,
                offset,
                length,
                file_len,
            } => {
                self.u8(2);
                self.str(component);
                self.u64(*offset);
                self.u64(*length);
                self.u64(*file_len);
            }
            Error::Unsupported(message) => {
                self.u8(3);
                self.str(message);
            }
            Error::LimitExceeded { what, size, limit } => {
                self.u8(4);
                self.str(what);
                self.u64(*size);
                self.u64(*limit);
            }
            other => {
                self.u8(5);
                self.str(&other.to_string());
            }
        }
    }
}

/// A reply being read (in the parent). Its errors say the reply is garbled; callers turn them
/// into one error about the file.
pub(crate) struct Reader<'a>(ByteCursor<'a>);

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader(ByteCursor::new(bytes, FORMAT))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.remaining() == 0
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        self.0.u8("reply")
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        self.0.u64("reply")
    }

    /// A count of items of at least `min_item_bytes` each: never more than the bytes left
    /// could hold, so a garbled count cannot make the parent allocate.
    pub(crate) fn count(&mut self, min_item_bytes: u64) -> Result<usize, Error> {
        let count = self.u64()?;
        self.0.count(count, min_item_bytes, "reply")
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let len = self.u64()?;
        self.0.take(len, "reply")
    }

    pub(crate) fn string(&mut self) -> Result<String, Error> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| garbled("text that is not UTF-8"))
    }

    pub(crate) fn attributes(&mut self) -> Result<Attributes, Error> {
        let count = self.count(9)?;
        let mut attributes = Attributes::new();
        for _ in 0..count {
            let key = self.string()?;
            attributes.insert(key, self.value(0)?);
        }
        Ok(attributes)
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(garbled("values nested too deep"));
        }
        Ok(match self.u8()? {
            0 => Value::Null,
            1 => Value::Bool(self.u8()? != 0),
            2 => Value::Integer(i128::from_le_bytes(self.0.array("reply")?)),
            3 => Value::Float(f64::from_bits(self.u64()?)),
            4 => Value::Text(self.string()?),
            5 => Value::Bytes(self.bytes()?.to_vec()),
            6 => {
                let count = self.count(1)?;
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(self.value(depth + 1)?);
                }
                Value::Array(values)
            }
            7 => {
                let count = self.count(2)?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    entries.push((self.value(depth + 1)?, self.value(depth + 1)?));
                }
                Value::Map(entries)
            }
            8 => {
                let tag = self.u64()?;
                Value::Tag(tag, Box::new(self.value(depth + 1)?))
            }
            _ => return Err(garbled("unknown value tag")),
        })
    }

    pub(crate) fn error(&mut self) -> Result<Error, Error> {
        self.error_at(0)
    }

    fn error_at(&mut self, depth: usize) -> Result<Error, Error> {
        if depth > MAX_DEPTH {
            return Err(garbled("errors nested too deep"));
        }
        Ok(match self.u8()? {
            0 => {
                let name = self.string()?;
                self.error_at(depth + 1)?.in_tensor(&name)
            }
            1 => Error::malformed(FORMAT, self.string()?),
            2 => Error::OutOfBounds {
                component: self.string()?,
                offset: self.u64()?,
                length: self.u64()?,
                file_len: self.u64()?,
            },
            3 => Error::Unsupported(self.string()?),
            4 => Error::LimitExceeded {
                what: self.string()?,
                size: self.u64()?,
                limit: self.u64()?,
            },
            5 => Error::malformed(FORMAT, self.string()?),
            _ => return Err(garbled("unknown error tag")),
        })
    }
}

/// The error for a reply that does not decode (or decodes to something impossible).
pub(crate) fn garbled(what: &str) -> Error {
    Error::malformed(
        FORMAT,
        format!(
            "the process isolating libhdf5 sent a garbled reply ({what}); libhdf5 may have \
             corrupted its memory: the file is damaged"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_errors_round_trip() {
        let mut attributes = Attributes::new();
        attributes.insert("n".into(), Value::Integer(-(1 << 100)));
        attributes.insert("f".into(), Value::Float(-0.5));
        attributes.insert(
            "a".into(),
            Value::Array(vec![
                Value::Null,
                Value::Bool(true),
                Value::Text("é".into()),
            ]),
        );
        attributes.insert(
            "m".into(),
            Value::Map(vec![(
                Value::Bytes(vec![1, 2]),
                Value::Tag(7, Box::new(Value::Null)),
            )]),
        );
        let errors = [
            Error::malformed(FORMAT, "bad").in_tensor("a/b"),
            Error::OutOfBounds {
                component: "data".into(),
                offset: 1,
                length: 2,
                file_len: 3,
            },
            Error::Unsupported("deep".into()),
            Error::LimitExceeded {
                what: "x".into(),
                size: 5,
                limit: 4,
            },
        ];
        let mut writer = Writer::default();
        writer.attributes(&attributes);
        for error in &errors {
            writer.error(error);
        }
        let bytes = writer.into_bytes();
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.attributes().unwrap(), attributes);
        for error in &errors {
            assert_eq!(reader.error().unwrap().to_string(), error.to_string());
        }
        assert!(reader.is_empty());
        // Every truncation and every damaged byte decodes to a value or an error, never a
        // panic or a huge allocation.
        for len in 0..bytes.len() {
            let _ = Reader::new(&bytes[..len]).attributes();
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0xff;
            let mut reader = Reader::new(&damaged);
            if reader.attributes().is_ok() {
                let _ = reader.error();
            }
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut bytes = vec![6u8];
        for _ in 0..100 {
            bytes.extend_from_slice(&1u64.to_le_bytes());
            bytes.push(6);
        }
        bytes.extend_from_slice(&0u64.to_le_bytes());
        assert!(Reader::new(&bytes).value(0).is_err());
    }
}
