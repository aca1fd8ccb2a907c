//! Any byte string as a standalone .npy file: open it and read its tensor.
#![no_main]

mod foreign;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    foreign::read_everything(data, "npy", |p| zt_npz::NpzReader::open(p));
});
