//! Any byte string as a pickle: run it through the restricted machine and walk what it built.
//! Beyond "no panic, no hang, bounded memory": whatever tensors come out are well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zt_pickle::pickle::unpickle_at;
use zt_pickle::{Limits, MAX_RANK, flatten_with};

fuzz_target!(|data: &[u8]| {
    // Tighter than the defaults so that each run stays fast; the limit checks are the same code.
    let limits = Limits {
        max_walk_steps: 1 << 16,
        max_walk_bytes: 1 << 24,
        max_metadata_bytes: 1 << 22,
        ..Limits::default()
    };
    let Ok((pickle, end)) = unpickle_at(data, 0, &limits) else {
        return;
    };
    assert!(end <= data.len());
    if let Ok(flat) = flatten_with(&pickle, &limits) {
        for (_, tensor) in &flat.tensors {
            assert_eq!(tensor.size.len(), tensor.stride.len());
            assert!(tensor.size.len() <= MAX_RANK);
        }
    }
});
