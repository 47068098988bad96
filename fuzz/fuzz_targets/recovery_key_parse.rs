//! Fuzzes reading a typed recovery key; a key that parses must display and parse back to itself.

#![no_main]

use blindfold_actors::crypto::RecoveryKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(typed) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = RecoveryKey::parse(typed) {
        let shown = key.display();
        let again = RecoveryKey::parse(&shown);
        assert!(again.is_ok_and(|again| *again.display() == *shown));
    }
});
