//! Any byte string as a whole .npz file (a zip of .npy entries): open it and read every tensor.
#![no_main]

mod foreign;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    foreign::read_everything(data, "npz", |p| zt_npz::NpzReader::open(p));
});
