//! Shared by the foreign-format fuzz targets: the input becomes a file in /dev/shm, is opened
//! with a reader, and every component of every tensor is read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zt_core::{Error, TensorReader};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to a unique temporary `*.{ext}` file, opens it with `open`, reads everything,
/// and checks the invariants every reader promises. Errors are fine; panics are bugs.
pub fn read_everything<R: TensorReader>(
    data: &[u8],
    ext: &str,
    open: impl Fn(&Path) -> Result<R, Error>,
) {
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("zt-fuzz-{}-{n}.{ext}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(reader) = open(&path) {
        let _ = reader.metadata();
        for name in reader.names() {
            let info = reader.info(name).expect("a listed name has an info");
            for (role, component) in &info.components {
                if let Ok(bytes) = reader.component(name, role) {
                    if let Some(len) = component.decoded_len {
                        assert_eq!(bytes.len() as u64, len, "{name}/{role}: decoded length");
                    }
                }
            }
            let _ = reader.dense(name);
        }
    }
    let _ = std::fs::remove_file(&path);
}
