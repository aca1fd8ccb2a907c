//! Any byte string as a CBOR manifest (current and legacy schema); a manifest that parses must
//! re-encode and parse back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zt_format::manifest::{encode_manifest, parse_legacy_manifest, parse_manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = parse_manifest(data)
        && let Ok(bytes) = encode_manifest(&manifest)
    {
        let again = parse_manifest(&bytes).expect("our own encoding must parse");
        // NaN attributes compare unequal; compare the encodings instead.
        assert_eq!(encode_manifest(&again).unwrap(), bytes);
    }
    let _ = parse_legacy_manifest(data);
});
