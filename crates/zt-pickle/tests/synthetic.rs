//! Valid checkpoints that current torch does not write but older torch (or other writers) did,
//! built by hand: legacy storage views, `_rebuild_tensor` (v1), CUDA storage classes,
//! `OrderedDict(pairs)`, plain data made with allowed constructors.

use std::borrow::Cow;

use zt_core::{TensorReader, Value};
use zt_pickle::PickleReader;

mod common;
use common::{P, checkpoint, legacy, tensor};

fn open(bytes: &[u8]) -> (tempfile::TempDir, PickleReader) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.pt");
    std::fs::write(&path, bytes).unwrap();
    let reader = PickleReader::open(&path).unwrap();
    (dir, reader)
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn legacy_storage_views() {
    // torch < 1.0 pickled a storage view as ("storage", class, root_key, location, root_numel,
    // (view_key, offset, size)): the view covers elements 2..5 of the root storage.
    let object = P::new()
        .raw(b"}")
        .str("v")
        .global("torch._utils", "_rebuild_tensor")
        .mark()
        .mark()
        .str("storage")
        .global("torch", "FloatStorage")
        .str("root")
        .str("cpu")
        .int(6)
        .str("view")
        .int(2)
        .int(3)
        .raw(b"\x87")
        .tuple()
        .raw(b"Q")
        .int(0)
        .ints(&[3])
        .ints(&[1])
        .tuple()
        .reduce()
        .raw(b"s")
        .stop();
    let data = f32s(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let (_dir, reader) = open(&legacy(&object, &["root"], &[(6, &data)]));
    assert_eq!(reader.names(), ["v"]);
    let bytes = reader.dense("v").unwrap();
    assert!(matches!(bytes, Cow::Borrowed(_)));
    assert_eq!(&*bytes, f32s(&[2.0, 3.0, 4.0]));
}

#[test]
fn old_writers_constructs() {
    // An OrderedDict built from a list of pairs, holding a tensor whose storage class is the
    // CUDA one old torch wrote, a Counter, a set, bytes, a complex number and a device.
    let p = P::new()
        .global("collections", "OrderedDict")
        .raw(b"]")
        .mark();
    let p = tensor(p.str("w"), "HalfStorage", "0", 4, 1, &[3], &[1]).raw(b"\x86");
    let p = p
        .str("counts")
        .global("collections", "Counter")
        .raw(b"}")
        .str("a")
        .int(2)
        .raw(b"s\x85R\x86")
        .str("ids")
        .global("__builtin__", "set")
        .raw(b"](K\x01K\x02e\x85R\x86")
        .str("blob")
        .global("_codecs", "encode")
        .str("\u{ff}\u{0}")
        .str("latin1")
        .raw(b"\x86R\x86")
        .str("z")
        .global("builtins", "complex")
        .raw(b"G?\xf0\x00\x00\x00\x00\x00\x00G\x00\x00\x00\x00\x00\x00\x00\x00\x86R\x86")
        .str("device")
        .global("torch", "device")
        .str("cuda")
        .raw(b"K\x01\x86R\x86")
        .raw(b"e\x85R");
    let pickle = p.stop();
    // Swap the storage class for torch.cuda.HalfStorage.
    let pickle = replace(
        &pickle,
        b"ctorch\nHalfStorage\n",
        b"ctorch.cuda\nHalfStorage\n",
    );
    let record: Vec<u8> = [1u16, 2, 3, 4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (_dir, reader) = open(&checkpoint(&pickle, &[("data/0", &record)]));
    assert_eq!(reader.names(), ["w"]);
    assert_eq!(&*reader.dense("w").unwrap(), &record[2..]);
    let meta = reader.metadata();
    assert_eq!(meta["counts.a"], Value::Integer(2));
    assert_eq!(
        meta["ids"],
        Value::Array(vec![Value::Integer(1), Value::Integer(2)])
    );
    assert_eq!(meta["device"], Value::Text("cuda:1".into()));
    // Bytes and complex numbers are not metadata.
    assert!(!meta.contains_key("blob") && !meta.contains_key("z"));
}

#[test]
fn scalars_and_unusual_keys() {
    // A bare scalar at the root is metadata named "".
    let (_dir, reader) = open(&checkpoint(&P::new().int(42).stop(), &[]));
    assert!(reader.is_empty());
    assert_eq!(reader.metadata()[""], Value::Integer(42));
    // Keys that are not strings: ints, bools, None, tuples, bytes.
    let p = P::new()
        .raw(b"}")
        .mark()
        .int(-3)
        .raw(b"K\x01")
        .raw(b"\x88K\x02")
        .raw(b"NK\x03")
        .str("a")
        .str("b")
        .raw(b"\x86K\x04")
        .raw(b"C\x02k\xffK\x05")
        .raw(b"u");
    let (_dir, reader) = open(&checkpoint(&p.stop(), &[]));
    let keys: Vec<&str> = reader.metadata().keys().map(String::as_str).collect();
    assert_eq!(keys, ["(a, b)", "-3", "None", "True", "k\u{fffd}"]);
}

#[test]
fn a_key_set_twice_keeps_its_first_place_and_last_value() {
    let p = P::new()
        .raw(b"}")
        .mark()
        .str("x")
        .int(1)
        .str("y")
        .int(2)
        .str("x")
        .int(3)
        .raw(b"u");
    let (_dir, reader) = open(&checkpoint(&p.stop(), &[]));
    assert_eq!(reader.metadata()["x"], Value::Integer(3));
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}
