//! Resource limits (spec/limits.md): what a pickle makes the reader build is bounded by the
//! pickle's size, not only by the absolute limits: a small pickle that reaches one tensor (or one
//! scalar) under millions of names through shared dicts is refused before it costs gigabytes,
//! while real checkpoints, tied weights and a state dict saved under two keys still open.
//! `hostile.rs` holds the wider corpus (lying lengths, memo keys, LONG4, zip bombs) at the same
//! bound.
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

mod common;

use common::{P, checkpoint, tensor};
use zt_core::{Error, TensorReader};
use zt_pickle::{PickleReader, WALK_OUTPUT_SLACK};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// The bound of `hostile.rs`: a few dozen bytes per pickle byte, plus fixed overhead.
const MULTIPLE: usize = 64;
const SLACK: usize = WALK_OUTPUT_SLACK as usize;

const F32X6: &[u8] = &[0u8; 24];

/// `{0: D, 1: D, ...}` with `D = {0: leaf, 1: leaf, ...}`, `fanout` keys each and one leaf
/// value (a tensor, or a float): `fanout^2` names in about `24 * fanout` bytes.
fn shared_dicts(fanout: usize, tensor_leaf: bool) -> Vec<u8> {
    let key = |p: P, i: usize| p.str(&format!("{i}"));
    let mut p = P::new().raw(b"}").mark();
    for i in 0..fanout {
        p = key(p, i);
        if i == 0 {
            p = p.raw(b"}q\x01").mark();
            for j in 0..fanout {
                p = key(p, j);
                p = match (j, tensor_leaf) {
                    (0, true) => tensor(p, "FloatStorage", "0", 6, 0, &[6], &[1]).raw(b"q\x00"),
                    (0, false) => p.raw(b"G\x3f\xf0\0\0\0\0\0\0q\x00"),
                    _ => p.raw(b"h\x00"),
                };
            }
            p = p.raw(b"u");
        } else {
            p = p.raw(b"h\x01");
        }
    }
    p.raw(b"u").stop()
}

/// `{"a": sd, "b": sd}` around one state dict of `n` distinct tensors with realistic names,
/// as `torch.save` writes it (every tensor rebuilt in full).
fn state_dict_twice(n: usize) -> Vec<u8> {
    let mut p = P::new().raw(b"}").mark().str("a").raw(b"}q\x01").mark();
    for i in 0..n {
        p = p.str(&format!("model.layers.{i}.self_attn.q_proj.weight"));
        p = tensor(p, "FloatStorage", "0", 6, 0, &[2, 3], &[3, 1]);
    }
    p.raw(b"u").str("b").raw(b"h\x01u").stop()
}

fn open(bytes: &[u8]) -> Result<usize, Error> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.pt");
    std::fs::write(&path, bytes).unwrap();
    let reader = PickleReader::open(&path)?;
    for name in reader.names() {
        reader.dense(name)?;
    }
    Ok(reader.len())
}

fn measure(name: &str, pickle: &[u8]) -> Result<usize, Error> {
    let file = checkpoint(pickle, &[("data/0", F32X6)]);
    let (result, peak) = zt_testkit::CountingAllocator::measure(|| open(&file));
    let ratio = peak as f64 / file.len() as f64;
    println!(
        "{name}: {} bytes, peak {peak} ({ratio:.1}x): {result:?}",
        file.len()
    );
    let bound = MULTIPLE * file.len() + SLACK;
    assert!(
        peak <= bound,
        "{name}: allocated {peak} bytes (bound {bound})"
    );
    result
}

#[test]
fn names_are_bounded_by_the_pickle() {
    let refused = |e: &Error| matches!(e.kind(), Error::LimitExceeded { what, .. } if what.contains("many names"));
    // A few names per byte are fine; a million (2000 x 2000, a 50 KB pickle that would cost
    // 8 GB of tensor entries) are refused, for tensors and for metadata alike.
    assert_eq!(
        measure("10x10 shared dicts", &shared_dicts(10, true)).unwrap(),
        100
    );
    for fanout in [300, 2000] {
        for tensor_leaf in [true, false] {
            let name = format!("{fanout}x{fanout} shared dicts (tensor leaf: {tensor_leaf})");
            let err = measure(&name, &shared_dicts(fanout, tensor_leaf)).unwrap_err();
            assert!(refused(&err), "{name}: {err}");
        }
    }
    // A real state dict saved under two keys opens: 2 x 5000 names.
    assert_eq!(
        measure("state dict saved twice", &state_dict_twice(5000)).unwrap(),
        10_000
    );
}
