//! Fuzzes opening an access token: any string must yield claims or an error, never a panic.

#![no_main]

use blindfold_actors::crypto::TokenKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = TokenKeys::from_bytes(1, [0x42; 32], Some([0x24; 32]));
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = keys.open(token, 1_700_000_000);
    }
});
