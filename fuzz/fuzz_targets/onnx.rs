//! Any byte string as an ONNX model: open it and read every component. External data is not
//! exercised here (a fuzzer-made location names no file next to the temporary model, and the
//! path checks are covered by the hostile tests).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use zt_core::TensorReader;
use zt_onnx::OnnxReader;

fuzz_target!(|data: &[u8]| {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("zt-fuzz-onnx-{}.onnx", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(data)
        .unwrap();
    if let Ok(reader) = OnnxReader::open(&path) {
        for name in reader.names() {
            let info = reader.info(name).unwrap();
            for role in info.components.keys() {
                let _ = reader.component(name, role).unwrap();
            }
            let _ = reader.dense(name);
        }
    }
    let _ = std::fs::remove_file(&path);
});
