//! Any byte string as a whole `.zt` file: open it, then read and verify every component.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use zt_core::TensorReader;
use zt_format::{OpenOptions, ZtReader};

fuzz_target!(|data: &[u8]| {
    if ZtReader::validate_bytes(data).is_err() {
        return;
    }
    // A valid-looking container: go through the real mmap path and read everything.
    let mut file = tempfile_in_shm();
    file.1.write_all(data).unwrap();
    let options = OpenOptions {
        verify_checksums: true,
        // Keep each iteration cheap: the limit logic is exercised, not the allocator.
        max_decoded_len: 1 << 24,
        ..OpenOptions::default()
    };
    if let Ok(reader) = ZtReader::open_with(&file.0, options) {
        for name in reader.names() {
            let info = reader.info(name).unwrap();
            for role in info.components.keys() {
                let _ = reader.component(name, role);
            }
            let _ = reader.dense(name);
        }
        let _ = reader.verify_all(false);
    }
    let _ = std::fs::remove_file(&file.0);
});

fn tempfile_in_shm() -> (std::path::PathBuf, std::fs::File) {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("zt-fuzz-{}.zt", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}
