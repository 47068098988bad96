//! Fuzzes the second-factor inputs a user types: backup codes (a code that parses must display
//! and parse back to itself) and TOTP codes, checked against a fixed secret at any time.

#![no_main]

use blindfold_actors::crypto::backup_codes::BackupCode;
use blindfold_actors::crypto::totp::TotpSecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((time, typed)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(typed) = std::str::from_utf8(typed) else {
        return;
    };
    if let Ok(code) = BackupCode::parse(typed) {
        let shown = code.display();
        let again = BackupCode::parse(&shown);
        assert!(again.is_ok_and(|again| *again.display() == *shown));
    }
    if let Ok(secret) = TotpSecret::from_bytes(&[0x3c; 20]) {
        let now = u64::from_le_bytes(*time);
        let _ = secret.verify(typed, now, now / 30);
        let _ = secret.verify(typed, now, 0);
    }
});
