//! Fuzzes every decoder of stored bytes: stream metadata, envelope frames, event keys, and the
//! postcard decoding of events and projection values behind their seals.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    blindfold_events::decode_stored_bytes_for_fuzzing(data);
});
