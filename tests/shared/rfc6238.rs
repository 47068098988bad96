//! An RFC 6238 TOTP written from the RFC, independent of the server's TOTP crate, so the tests
//! check the server's codes against a second implementation. Shared by the test binaries with
//! `#[path]`.

use hmac_sha1::{Hmac, Mac};

/// The 6-digit SHA-1 code of the 30-second step containing `time` (Unix seconds).
pub fn code(secret: &[u8], time: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&(time / 30).to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let binary = u32::from_be_bytes(hash[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", binary % 1_000_000)
}

/// RFC 4648 base32, padding optional: how the server hands out a TOTP secret.
pub fn base32_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut buffer, mut out) = (0u32, 0u64, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let value = alphabet.iter().position(|a| *a == c).unwrap() as u64;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// Unix seconds now.
#[allow(dead_code)]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_independent_implementation_matches_rfc_6238_appendix_b() {
    // The Appendix B SHA-1 vectors, truncated to 6 digits (the last six of the 8-digit codes).
    let secret = b"12345678901234567890";
    assert_eq!(code(secret, 59), "287082");
    assert_eq!(code(secret, 1_111_111_109), "081804");
    assert_eq!(code(secret, 1_234_567_890), "005924");
    assert_eq!(code(secret, 2_000_000_000), "279037");
}
