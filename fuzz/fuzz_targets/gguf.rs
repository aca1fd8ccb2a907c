//! Any byte string as a GGUF file: open it and read every tensor.
#![no_main]

mod foreign;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    foreign::read_everything(data, "gguf", |p| zt_gguf::GgufReader::open(p));
});
