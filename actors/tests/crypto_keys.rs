//! The keyring file, the environment form of the master secret, username normalization,
//! recovery-key parsing, and Debug output that never shows a secret.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use blindfold_actors::crypto::keys::{KeyError, MasterSecret, ServerKeys};
use blindfold_actors::crypto::password::{DecoyKey, Password, Pepper, WrappingKey};
use blindfold_actors::crypto::recovery::{RecoveryKey, RecoveryKeyError};
use blindfold_actors::crypto::token::{Methods, TokenClaims};
use blindfold_actors::crypto::user_key::UserKey;
use blindfold_actors::crypto::username::{UsernameError, normalize};
use blindfold_events::Handle;
use proptest::prelude::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts that `shown` holds none of the usual spellings of `secret`.
fn assert_hidden(shown: &str, secret: &[u8]) {
    let spellings = [
        hex(secret),
        hex(secret).to_uppercase(),
        STANDARD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        format!("{secret:?}"),
    ];
    for spelling in spellings {
        assert!(
            !shown.contains(&spelling),
            "Debug output shows a secret: {shown}"
        );
    }
}

fn master_bytes() -> [u8; 32] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
}

#[test]
fn a_new_keyring_is_created_with_mode_0600_and_loads_back_the_same_secret() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("keyring");

    let (created, was_created) = MasterSecret::load_or_create(&path).unwrap();
    assert!(was_created);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let (loaded, was_created) = MasterSecret::load_or_create(&path).unwrap();
    assert!(!was_created);
    assert_eq!(*loaded.to_base64(), *created.to_base64());
}

#[test]
fn a_keyring_that_group_or_others_can_read_is_refused_naming_only_its_mode() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("keyring");
    let (secret, _) = MasterSecret::load_or_create(&path).unwrap();

    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = MasterSecret::load_or_create(&path).unwrap_err();
        assert!(matches!(error, KeyError::Permissions { mode: m } if m == mode));

        let message = error.to_string();
        assert!(message.contains(&format!("{mode:04o}")));
        assert!(!message.contains(secret.to_base64().trim()));
    }
}

#[test]
fn a_keyring_holding_anything_but_a_key_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("keyring");
    std::fs::write(&path, "not a key\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        MasterSecret::load_or_create(&path),
        Err(KeyError::Malformed)
    ));
}

#[test]
fn the_environment_form_is_read_in_any_base64_spelling() {
    let bytes = master_bytes();
    let reference = STANDARD.encode(bytes);
    let spellings = [
        reference.clone(),
        format!("  {reference}\n"),
        reference.trim_end_matches('=').to_owned(),
        URL_SAFE_NO_PAD.encode(bytes),
    ];
    for spelling in spellings {
        let secret = MasterSecret::from_base64(&spelling).unwrap();
        assert_eq!(*secret.to_base64(), reference);
    }
}

#[test]
fn an_environment_key_of_the_wrong_length_or_alphabet_is_refused() {
    for bad in [
        String::new(),
        STANDARD.encode([1u8; 31]),
        STANDARD.encode([1u8; 33]),
        "*".repeat(44),
    ] {
        assert!(matches!(
            MasterSecret::from_base64(&bad),
            Err(KeyError::Malformed)
        ));
    }
}

#[test]
fn no_key_type_shows_its_bytes_in_debug() {
    let bytes = master_bytes();
    let master = MasterSecret::from_base64(&STANDARD.encode(bytes)).unwrap();
    assert_hidden(&format!("{master:?}"), &bytes);
    assert_hidden(&format!("{master:#?}"), &bytes);

    let keys = ServerKeys::derive(&master, 1).unwrap();
    let shown = format!("{keys:?}");
    assert_hidden(&shown, &bytes);
    assert_hidden(&shown, keys.storage.expose());

    assert_hidden(&format!("{:?}", UserKey::from_bytes(bytes)), &bytes);
    assert_hidden(&format!("{:?}", WrappingKey::from_bytes(bytes)), &bytes);
    assert_hidden(&format!("{:?}", Pepper::from_bytes(bytes)), &bytes);
    assert_hidden(&format!("{:?}", DecoyKey::from_bytes(bytes)), &bytes);
    assert_hidden(&format!("{:?}", Password::from(bytes.to_vec())), &bytes);

    let recovery = RecoveryKey::from_bytes([0x5a; 20]);
    let shown = format!("{recovery:?}");
    assert_hidden(&shown, &[0x5a; 20]);
    assert!(!shown.contains(recovery.display().as_str()));
}

#[test]
fn token_claims_show_nothing_in_debug() {
    let claims = TokenClaims {
        handle: Handle([0x11; 32]),
        user_key: UserKey::from_bytes([0x22; 32]),
        epoch: 987_654_321,
        jkt: [0x33; 32],
        issued_at: 1,
        expires_at: 2,
        session_expires_at: 3,
        methods: Methods::PASSWORD,
        token_id: [0x44; 16],
    };
    let shown = format!("{claims:?}");
    for secret in [&[0x11; 32][..], &[0x22; 32], &[0x33; 32], &[0x44; 16]] {
        assert_hidden(&shown, secret);
    }
    assert!(!shown.contains("987654321"));
}

#[test]
fn alice_in_any_case_or_width_is_one_account() {
    let keys = ServerKeys::derive(&MasterSecret::generate().unwrap(), 0).unwrap();
    let alice = keys.index.handle(&normalize("alice").unwrap());
    for spelling in ["Alice", "ALICE", "aLiCe", "ＡＬＩＣＥ"] {
        let username = normalize(spelling).unwrap();
        assert_eq!(username.as_str(), "alice");
        assert_eq!(keys.index.handle(&username), alice);
    }
    assert_ne!(keys.index.handle(&normalize("bob").unwrap()), alice);
}

#[test]
fn handles_differ_between_servers() {
    let one = ServerKeys::derive(&MasterSecret::generate().unwrap(), 0).unwrap();
    let other = ServerKeys::derive(&MasterSecret::generate().unwrap(), 0).unwrap();
    let alice = normalize("alice").unwrap();
    assert_ne!(one.index.handle(&alice), other.index.handle(&alice));
}

#[test]
fn a_username_keeps_its_non_ascii_letters() {
    assert_eq!(normalize("Zoë").unwrap().as_str(), "zoë");
    assert_eq!(normalize("ΣΑΜ").unwrap().as_str(), "σαμ");
}

#[test]
fn invalid_usernames_are_refused() {
    let cases: [(&str, UsernameError); 7] = [
        ("", UsernameError::Empty),
        (" ", UsernameError::Invalid),
        ("al ice", UsernameError::Invalid),
        ("alice\u{7}", UsernameError::Invalid),
        ("alice\u{200b}", UsernameError::Invalid),
        ("\u{05d0}a", UsernameError::Invalid),
        ("a\u{0301}\u{0000}", UsernameError::Invalid),
    ];
    for (raw, expected) in cases {
        assert_eq!(normalize(raw).err(), Some(expected), "{raw:?}");
    }
}

#[test]
fn a_username_is_at_most_64_bytes_after_normalization() {
    assert!(normalize(&"a".repeat(64)).is_ok());
    assert_eq!(
        normalize(&"a".repeat(65)).err(),
        Some(UsernameError::TooLong)
    );
    assert_eq!(
        normalize(&"é".repeat(33)).err(),
        Some(UsernameError::TooLong)
    );
    assert_eq!(
        normalize(&"a".repeat(100_000)).err(),
        Some(UsernameError::TooLong)
    );
}

#[test]
fn a_username_shows_nothing_in_debug_and_its_error_nothing_of_it() {
    let username = normalize("secretname").unwrap();
    assert!(!format!("{username:?}").contains("secretname"));
    let error = normalize("secret name").unwrap_err();
    assert!(!error.to_string().contains("secret"));
}

#[test]
fn a_recovery_key_is_shown_as_eight_groups_of_four() {
    let shown = RecoveryKey::generate().unwrap().display();
    let groups: Vec<&str> = shown.split('-').collect();
    assert_eq!(groups.len(), 8);
    for group in groups {
        assert_eq!(group.len(), 4);
        assert!(
            group
                .bytes()
                .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))
        );
    }
}

#[test]
fn a_recovery_key_encodes_in_crockford_base32() {
    let zero = RecoveryKey::from_bytes([0; 20]);
    assert_eq!(
        zero.display().as_str(),
        "0000-0000-0000-0000-0000-0000-0000-0000"
    );
    let ones = RecoveryKey::from_bytes([0xff; 20]);
    assert_eq!(
        ones.display().as_str(),
        "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ"
    );
    let mut bytes = [0u8; 20];
    bytes[..5].copy_from_slice(&[0x08, 0x86, 0x42, 0x98, 0xe8]);
    // 00001 00010 00011 00100 00101 00110 00111 01000
    assert!(
        RecoveryKey::from_bytes(bytes)
            .display()
            .starts_with("1234-5678-")
    );
}

#[test]
fn a_mistyped_recovery_key_is_read_as_meant() {
    let key = RecoveryKey::from_bytes([
        0x00, 0x42, 0x10, 0x84, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ]);
    let shown = key.display().to_string();
    assert!(shown.contains('0') && shown.contains('1'));

    let mangled = [
        shown.to_lowercase(),
        shown.replace('-', ""),
        shown.replace('-', " "),
        format!("  {}  ", shown.replace('-', " - ")),
        shown.replace('0', "O"),
        shown.replace('0', "o"),
        shown.replace('1', "I"),
        shown.replace('1', "l"),
        shown.replace('1', "L"),
        shown.chars().flat_map(|c| [c, ' ']).collect(),
    ];
    for typed in mangled {
        assert_eq!(RecoveryKey::parse(&typed).unwrap(), key, "{typed}");
    }
}

#[test]
fn a_recovery_key_of_the_wrong_length_is_refused() {
    let shown = RecoveryKey::generate().unwrap().display().replace('-', "");
    for typed in [
        String::new(),
        shown[..31].to_owned(),
        format!("{shown}0"),
        "-".repeat(40),
    ] {
        assert_eq!(
            RecoveryKey::parse(&typed).err(),
            Some(RecoveryKeyError::WrongLength)
        );
    }
    assert_eq!(
        RecoveryKey::parse(&"0".repeat(10_000)).err(),
        Some(RecoveryKeyError::WrongLength)
    );
}

#[test]
fn a_recovery_key_with_a_character_outside_crockford_base32_is_refused() {
    let shown = RecoveryKey::generate().unwrap().display().to_string();
    for bad in ['U', 'u', '!', '_', '=', 'é', '０'] {
        let typed: String = std::iter::once(bad).chain(shown.chars().skip(1)).collect();
        assert_eq!(
            RecoveryKey::parse(&typed).err(),
            Some(RecoveryKeyError::BadCharacter)
        );
    }
}

proptest! {
    #[test]
    fn a_recovery_key_round_trips_through_its_display_form(bytes in any::<[u8; 20]>()) {
        let key = RecoveryKey::from_bytes(bytes);
        let shown = key.display();
        prop_assert_eq!(shown.len(), 39);
        prop_assert_eq!(RecoveryKey::parse(&shown).unwrap(), key);
    }

    #[test]
    fn parsing_any_text_never_panics(text in ".{0,80}") {
        let _ = RecoveryKey::parse(&text);
    }

    #[test]
    fn normalizing_any_text_never_panics(text in ".{0,80}") {
        if let Ok(username) = normalize(&text) {
            prop_assert!((1..=64).contains(&username.as_str().len()));
            prop_assert_eq!(normalize(username.as_str()).unwrap(), username);
        }
    }
}

/// Found by the `username_normalize` fuzz target: one pass of the profile over this name is not
/// its last (RFC 8264 §7), so its normalized form normalized to something else again.
#[test]
fn a_name_one_pass_does_not_settle_normalizes_to_a_form_that_stays_put() {
    let raw = std::str::from_utf8(&[
        0xd6, 0x94, 0xc8, 0x90, 0xd6, 0x96, 0xd9, 0x90, 0x52, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x7d,
        0x7d, 0x7d, 0x7d, 0x7d, 0x7d, 0x41, 0xd9, 0x90, 0x52, 0xdd, 0x87, 0x2c, 0xd6, 0x94, 0xd9,
        0x90, 0xd6, 0x94, 0xd9, 0x90, 0x52, 0x30, 0x30, 0x52, 0xc9, 0x90, 0xd6, 0x96, 0xd9, 0x90,
        0x23, 0x52, 0x7d, 0x7d, 0x7d, 0x7d, 0x52, 0x7d, 0xdd, 0x87, 0x3c, 0xcc, 0xb8, 0xcc, 0xb8,
    ])
    .unwrap();
    match normalize(raw) {
        Ok(username) => assert_eq!(normalize(username.as_str()).unwrap(), username),
        Err(error) => assert_eq!(error, UsernameError::Invalid),
    }
}
