//! Fuzzes RFC 8265 username normalization; a normalized name must normalize to itself.

#![no_main]

use blindfold_actors::crypto::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(username) = normalize(raw) {
        let again = normalize(username.as_str());
        assert!(again.is_ok_and(|again| again.as_str() == username.as_str()));
    }
});
