//! The ztc1 codec: any byte string as a frame (plain and delta, under a size limit), and any
//! byte string round-tripped through the encoder (its first byte picks dtype and effort).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zt_codec::{
    CompressOptions, DecompressOptions, Effort, compress, decompress_delta_with, decompress_with,
    frame_info,
};
use zt_core::DType;

fuzz_target!(|data: &[u8]| {
    // One thread and a 1 MiB limit keep each iteration cheap (36 exec/s with the global pool
    // and 16 MiB): the limit logic is exercised, not the allocator or rayon's wake-ups.
    let limits = DecompressOptions {
        threads: Some(1),
        max_decoded_len: 1 << 20,
    };
    let _ = frame_info(data);
    let _ = decompress_with(data, &limits);
    let _ = decompress_delta_with(data, &data[..data.len().min(100)], &limits);

    if let Some((&sel, payload)) = data.split_first() {
        let dtype = match usize::from(sel % 14) {
            0 => None,
            k => Some(DType::ALL[k - 1]),
        };
        let effort = [Effort::Fast, Effort::Default, Effort::Max][usize::from(sel / 14 % 3)];
        let opts = CompressOptions {
            effort,
            chunk_size: 4096,
            threads: Some(1),
        };
        let frame = compress(payload, dtype, &opts).expect("valid options");
        let back = decompress_with(&frame, &limits).expect("own frames decode");
        assert_eq!(back, payload);
    }
});
