//! Any byte string as a safetensors file: open it through the real mmap path, read every tensor,
//! and check three properties beyond "no panic":
//! - whatever we accept, the reference crate (`safetensors::SafeTensors`) accepts, with the same
//!   tensor bytes (we are at least as strict as the reference);
//! - the in-memory validation agrees with `open`;
//! - writing the tensors back gives a file that both readers accept, with the same bytes.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use zt_core::TensorReader;
use zt_safetensors::{SafetensorsReader, serialize_safetensors};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let valid = SafetensorsReader::validate_bytes(data).is_ok();
    let path = temp_path();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(data)
        .unwrap();
    let opened = SafetensorsReader::open(&path);
    assert_eq!(opened.is_ok(), valid, "open and validate_bytes disagree");
    if let Ok(reader) = opened {
        let reference = safetensors::SafeTensors::deserialize(data)
            .expect("we accepted a file the reference refuses");
        for name in reader.names() {
            let bytes = reader.component(name, "data").unwrap();
            assert_eq!(&*bytes, reference.tensor(name).unwrap().data());
            reader.dense(name).unwrap();
        }
        let tensors = reader.tensors().unwrap();
        let rewritten = serialize_safetensors(&tensors, reader.header_metadata()).unwrap();
        SafetensorsReader::validate_bytes(&rewritten).unwrap();
        let again = safetensors::SafeTensors::deserialize(&rewritten).unwrap();
        for name in reader.names() {
            assert_eq!(
                &*reader.component(name, "data").unwrap(),
                again.tensor(name).unwrap().data()
            );
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
        "zt-fuzz-safetensors-{}-{unique}.safetensors",
        std::process::id()
    ))
}
