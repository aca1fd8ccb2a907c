//! Any byte string as a PyTorch checkpoint (zip or legacy torch.save): open it through the real
//! mmap path and read every tensor. Beyond "no panic": every tensor handed out has the length
//! its shape and dtype promise, and a given location matches the bytes.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use zt_core::TensorReader;
use zt_pickle::{Limits, PickleReader};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_walk_steps: 1 << 16,
        max_walk_bytes: 1 << 24,
        max_metadata_bytes: 1 << 22,
        max_expanded_len: 1 << 24,
        ..Limits::default()
    };
    let path = temp_path();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(data)
        .unwrap();
    if let Ok(reader) = PickleReader::open_with_limits(&path, &limits) {
        for name in reader.names() {
            let info = reader.info(name).unwrap();
            let component = info.dense_component().unwrap();
            if let Ok(bytes) = reader.dense(name) {
                assert_eq!(Some(bytes.len() as u64), component.decoded_len);
                if let Some(range) = component.location {
                    let start = range.offset as usize;
                    assert_eq!(&data[start..start + range.length as usize], &*bytes);
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});

fn temp_path() -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "zt-fuzz-pytorch-{}-{unique}.pt",
        std::process::id()
    ))
}
