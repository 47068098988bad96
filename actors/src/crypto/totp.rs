//! Time-based one-time passwords (RFC 6238) as a second factor: SHA-1, 6 digits, 30-second
//! steps, ±1 step of clock skew. The codes come from the `totp-rs` crate; this module only adds
//! what blindfold needs around it: a secret type that wipes itself, the `otpauth://` URI, and
//! **single use** — a code is accepted only for a step later than the last one accepted.

use totp_rs::{Algorithm, Secret, TOTP};
use zeroize::Zeroizing;

use super::user_key::CryptoError;

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Bytes of secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_LEN: usize = 20;
/// Steps of clock skew accepted either side of now.
pub const SKEW_STEPS: u64 = 1;

/// A TOTP secret. Wiped on drop; Debug prints nothing of it.
pub struct TotpSecret(Zeroizing<[u8; SECRET_LEN]>);

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Result<TotpSecret, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| CryptoError)?;
        Ok(TotpSecret(bytes))
    }

    /// The secret from its stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<TotpSecret, CryptoError> {
        let bytes: [u8; SECRET_LEN] = bytes.try_into().map_err(|_| CryptoError)?;
        Ok(TotpSecret(Zeroizing::new(bytes)))
    }

    /// The raw secret, for the one line that seals it.
    pub fn expose(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    /// The secret in RFC 4648 base32, as authenticator apps take it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        match &Secret::Raw(self.0.to_vec()).to_encoded() {
            Secret::Encoded(encoded) => Zeroizing::new(encoded.clone()),
            Secret::Raw(_) => Zeroizing::new(String::new()),
        }
    }

    /// The `otpauth://totp/…` URI an authenticator app scans, labelled `blindfold:<account>`.
    pub fn otpauth_uri(&self, account: &str) -> Zeroizing<String> {
        let label =
            percent_encoding::utf8_percent_encode(account, percent_encoding::NON_ALPHANUMERIC);
        Zeroizing::new(format!(
            "otpauth://totp/blindfold:{label}?secret={}&issuer=blindfold&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            self.to_base32().as_str()
        ))
    }

    /// The code for the step that contains `time` (Unix seconds).
    pub fn code_at(&self, time: u64) -> Zeroizing<String> {
        Zeroizing::new(self.generator(DIGITS).generate(time))
    }

    /// The step `code` belongs to, if it is the code of a step within ±1 of `now` and later
    /// than `last_used_step`. Compares in constant time; a malformed code matches nothing.
    pub fn verify(&self, code: &str, now: u64, last_used_step: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let generator = self.generator(DIGITS);
        let current = now / STEP_SECONDS;
        let mut matched = None;
        for step in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
            // A step whose start does not fit in a u64 has no code (only at the end of time).
            let Some(start) = step.checked_mul(STEP_SECONDS) else {
                continue;
            };
            let expected = Zeroizing::new(generator.generate(start));
            let equal = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes());
            if bool::from(equal) && step > last_used_step {
                matched = Some(step);
            }
        }
        matched
    }

    fn generator(&self, digits: usize) -> TOTP {
        TOTP::new_unchecked(Algorithm::SHA1, digits, 0, STEP_SECONDS, self.0.to_vec())
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// The code of an arbitrary secret, length and time: for RFC 6238 Appendix B, whose vectors
/// use 8 digits.
#[doc(hidden)]
pub fn reference_code(secret: &[u8], digits: usize, time: u64) -> String {
    TOTP::new_unchecked(Algorithm::SHA1, digits, 0, STEP_SECONDS, secret.to_vec()).generate(time)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors_match() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(reference_code(secret, 8, time), code, "at {time}");
        }
    }

    #[test]
    fn a_code_is_accepted_within_one_step_of_skew_and_only_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_000;
        let code = secret.code_at(now);
        let step = secret.verify(&code, now, 0).unwrap();
        assert_eq!(step, now / STEP_SECONDS);
        assert_eq!(secret.verify(&code, now + STEP_SECONDS, 0), Some(step));
        assert_eq!(secret.verify(&code, now + 2 * STEP_SECONDS, 0), None);
        assert_eq!(secret.verify(&code, now, step), None, "reused");
        let earlier = secret.code_at(now - STEP_SECONDS);
        assert_eq!(
            secret.verify(&earlier, now, step),
            None,
            "an earlier code after a later one"
        );
    }

    #[test]
    fn a_time_at_the_end_of_the_clock_neither_panics_nor_matches_out_of_range_steps() {
        // Found by the second_factor fuzz target: (now / 30 + 1) * 30 overflowed.
        let secret = TotpSecret::from_bytes(&[0x3c; 20]).unwrap();
        let now = u64::MAX - 1;
        assert_eq!(secret.verify("123456", now, now / 30), None);
        let code = secret.code_at(now - STEP_SECONDS);
        assert_eq!(secret.verify(&code, now, 0), Some(now / STEP_SECONDS - 1));
    }

    #[test]
    fn malformed_codes_match_nothing() {
        let secret = TotpSecret::generate().unwrap();
        for code in ["", "12345", "1234567", "abcdef", "12 345", "１２３４５６"] {
            assert_eq!(secret.verify(code, 1_700_000_000, 0), None);
        }
    }
}
