//! Round trips and tampering for everything blindfold seals: user-key wraps, data under the user
//! key, password-derived keys and tokens. Every change to a sealed value, and every move of it to
//! another place, must be refused.

use blindfold_actors::crypto::data::{
    Purpose, open_item_name, open_item_value, seal_item_name, seal_item_value,
};
use blindfold_actors::crypto::keys::{MasterSecret, ServerKeys, TokenKeys};
use blindfold_actors::crypto::password::{Password, Pepper, WrappingKey, derive_password_key};
use blindfold_actors::crypto::recovery::RecoveryKey;
use blindfold_actors::crypto::token::{Methods, TOKEN_LEN, TokenClaims, TokenError};
use blindfold_actors::crypto::user_key::{
    LoginMethod, UserKey, WRAPPED_USER_KEY_LEN, unwrap_user_key, wrap_user_key,
};
use blindfold_events::{Handle, KdfParams};
use proptest::prelude::*;

/// Small Argon2id parameters so property tests stay fast.
const FAST: KdfParams = KdfParams {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

const METHODS: [LoginMethod; 3] = [
    LoginMethod::Password,
    LoginMethod::Recovery,
    LoginMethod::Passkey,
];
const PURPOSES: [Purpose; 7] = [
    Purpose::Username,
    Purpose::Profile,
    Purpose::ItemName,
    Purpose::ItemValue,
    Purpose::TotpSecret,
    Purpose::SecurityLog,
    Purpose::BackupCodes,
];

fn method() -> impl Strategy<Value = LoginMethod> {
    prop::sample::select(METHODS.to_vec())
}

fn purpose() -> impl Strategy<Value = Purpose> {
    prop::sample::select(PURPOSES.to_vec())
}

fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut changed = bytes.to_vec();
    let bit = bit % (changed.len() * 8);
    changed[bit / 8] ^= 1 << (bit % 8);
    changed
}

/// Every way of changing a sealed value's bytes that the tests try: one flipped bit, cut short,
/// made longer.
fn tampered(sealed: &[u8], bit: usize, cut: usize, extra: &[u8]) -> Vec<Vec<u8>> {
    let mut extended = sealed.to_vec();
    extended.extend_from_slice(if extra.is_empty() { &[0] } else { extra });
    vec![
        flip_bit(sealed, bit),
        sealed[..cut % sealed.len()].to_vec(),
        extended,
    ]
}

proptest! {
    #[test]
    fn a_wrapped_user_key_round_trips(
        key in any::<[u8; 32]>(), uk in any::<[u8; 32]>(), handle in any::<[u8; 32]>(),
        method in method(),
    ) {
        let key = WrappingKey::from_bytes(key);
        let handle = Handle(handle);
        let wrapped = wrap_user_key(&key, &UserKey::from_bytes(uk), &handle, method).unwrap();

        prop_assert_eq!(wrapped.len(), WRAPPED_USER_KEY_LEN);
        let opened = unwrap_user_key(&key, &wrapped, &handle, method).unwrap();
        prop_assert_eq!(opened.expose(), &uk);
    }

    #[test]
    fn a_changed_wrapped_user_key_is_refused(
        key in any::<[u8; 32]>(), handle in any::<[u8; 32]>(), method in method(),
        bit in any::<usize>(), cut in any::<usize>(), extra in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let key = WrappingKey::from_bytes(key);
        let handle = Handle(handle);
        let wrapped = wrap_user_key(&key, &UserKey::from_bytes([1; 32]), &handle, method).unwrap();

        for changed in tampered(&wrapped, bit, cut, &extra) {
            prop_assert!(unwrap_user_key(&key, &changed, &handle, method).is_err());
        }
    }

    #[test]
    fn a_wrapped_user_key_does_not_open_for_another_handle_method_or_key(
        key in any::<[u8; 32]>(), other_key in any::<[u8; 32]>(),
        handle in any::<[u8; 32]>(), other_handle in any::<[u8; 32]>(),
        method in method(), other_method in method(),
    ) {
        let wrapping_key = WrappingKey::from_bytes(key);
        let wrapped =
            wrap_user_key(&wrapping_key, &UserKey::from_bytes([1; 32]), &Handle(handle), method)
                .unwrap();

        if other_handle != handle {
            let moved = unwrap_user_key(&wrapping_key, &wrapped, &Handle(other_handle), method);
            prop_assert!(moved.is_err());
        }
        if other_method != method {
            let moved = unwrap_user_key(&wrapping_key, &wrapped, &Handle(handle), other_method);
            prop_assert!(moved.is_err());
        }
        if other_key != key {
            let other = WrappingKey::from_bytes(other_key);
            prop_assert!(unwrap_user_key(&other, &wrapped, &Handle(handle), method).is_err());
        }
    }

    #[test]
    fn data_sealed_under_the_user_key_round_trips(
        uk in any::<[u8; 32]>(), handle in any::<[u8; 32]>(), purpose in purpose(),
        binding in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..4),
        plaintext in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let user_key = UserKey::from_bytes(uk);
        let handle = Handle(handle);
        let binding: Vec<&[u8]> = binding.iter().map(Vec::as_slice).collect();

        let sealed = user_key.seal(purpose, &handle, &binding, &plaintext).unwrap();
        let opened = user_key.open(purpose, &handle, &binding, &sealed).unwrap();
        prop_assert_eq!(&opened[..], &plaintext[..]);
    }

    #[test]
    fn changed_data_is_refused(
        handle in any::<[u8; 32]>(), purpose in purpose(),
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
        bit in any::<usize>(), cut in any::<usize>(), extra in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let user_key = UserKey::from_bytes([5; 32]);
        let handle = Handle(handle);
        let sealed = user_key.seal(purpose, &handle, &[b"where"], &plaintext).unwrap();

        for changed in tampered(&sealed, bit, cut, &extra) {
            prop_assert!(user_key.open(purpose, &handle, &[b"where"], &changed).is_err());
        }
    }

    #[test]
    fn data_does_not_open_for_another_handle_purpose_binding_or_user_key(
        handle in any::<[u8; 32]>(), other_handle in any::<[u8; 32]>(),
        purpose in purpose(), other_purpose in purpose(),
        uk in any::<[u8; 32]>(), other_uk in any::<[u8; 32]>(),
    ) {
        let user_key = UserKey::from_bytes(uk);
        let sealed = user_key.seal(purpose, &Handle(handle), &[b"a", b"bc"], b"secret").unwrap();

        if other_handle != handle {
            let moved = user_key.open(purpose, &Handle(other_handle), &[b"a", b"bc"], &sealed);
            prop_assert!(moved.is_err());
        }
        if other_purpose != purpose {
            let moved = user_key.open(other_purpose, &Handle(handle), &[b"a", b"bc"], &sealed);
            prop_assert!(moved.is_err());
        }
        if other_uk != uk {
            let other = UserKey::from_bytes(other_uk);
            prop_assert!(other.open(purpose, &Handle(handle), &[b"a", b"bc"], &sealed).is_err());
        }
        prop_assert!(user_key.open(purpose, &Handle(handle), &[b"ab", b"c"], &sealed).is_err());
        prop_assert!(user_key.open(purpose, &Handle(handle), &[b"a"], &sealed).is_err());
    }

    #[test]
    fn an_item_round_trips_and_does_not_move_to_another_item_or_version(
        name in prop::collection::vec(any::<u8>(), 1..64),
        other_name in prop::collection::vec(any::<u8>(), 1..64),
        value in prop::collection::vec(any::<u8>(), 0..256),
        version in any::<u64>(), other_version in any::<u64>(),
    ) {
        let user_key = UserKey::from_bytes([7; 32]);
        let handle = Handle([8; 32]);
        let item_id = user_key.item_id(&name);
        prop_assert_eq!(item_id, user_key.item_id(&name));

        let sealed_name = seal_item_name(&user_key, &handle, &item_id, &name).unwrap();
        let sealed_value = seal_item_value(&user_key, &handle, &item_id, version, &value).unwrap();
        let opened_name = open_item_name(&user_key, &handle, &item_id, &sealed_name).unwrap();
        prop_assert_eq!(&opened_name[..], &name[..]);
        let opened_value =
            open_item_value(&user_key, &handle, &item_id, version, &sealed_value).unwrap();
        prop_assert_eq!(&opened_value[..], &value[..]);

        // A value never opens as a name, nor a name as a value.
        prop_assert!(open_item_name(&user_key, &handle, &item_id, &sealed_value).is_err());
        prop_assert!(
            open_item_value(&user_key, &handle, &item_id, version, &sealed_name).is_err()
        );

        if other_name != name {
            let other_id = user_key.item_id(&other_name);
            prop_assert_ne!(other_id, item_id);
            prop_assert!(open_item_name(&user_key, &handle, &other_id, &sealed_name).is_err());
            let moved = open_item_value(&user_key, &handle, &other_id, version, &sealed_value);
            prop_assert!(moved.is_err());
        }
        if other_version != version {
            let replayed =
                open_item_value(&user_key, &handle, &item_id, other_version, &sealed_value);
            prop_assert!(replayed.is_err());
        }
    }

    #[test]
    fn item_ids_depend_on_the_user_key(name in prop::collection::vec(any::<u8>(), 0..64)) {
        let one = UserKey::from_bytes([1; 32]).item_id(&name);
        let other = UserKey::from_bytes([2; 32]).item_id(&name);
        prop_assert_ne!(one, other);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_password_unwraps_its_user_key_and_a_wrong_password_or_pepper_does_not(
        password in ".{0,24}", wrong in ".{0,24}", salt in any::<[u8; 16]>(),
        pepper in any::<[u8; 32]>(), other_pepper in any::<[u8; 32]>(),
    ) {
        let handle = Handle([3; 32]);
        let user_key = UserKey::from_bytes([4; 32]);
        let pepper_key = Pepper::from_bytes(pepper);
        let key = derive_password_key(&Password::from(password.clone()), &salt, &FAST, &pepper_key)
            .unwrap();
        let wrapped = wrap_user_key(&key, &user_key, &handle, LoginMethod::Password).unwrap();

        let again = derive_password_key(&Password::from(password.clone()), &salt, &FAST, &pepper_key)
            .unwrap();
        let opened = unwrap_user_key(&again, &wrapped, &handle, LoginMethod::Password).unwrap();
        prop_assert_eq!(opened.expose(), user_key.expose());

        if wrong != password {
            let guess = derive_password_key(&Password::from(wrong), &salt, &FAST, &pepper_key)
                .unwrap();
            prop_assert!(unwrap_user_key(&guess, &wrapped, &handle, LoginMethod::Password).is_err());
        }
        if other_pepper != pepper {
            let other = Pepper::from_bytes(other_pepper);
            let guess = derive_password_key(&Password::from(password), &salt, &FAST, &other).unwrap();
            prop_assert!(unwrap_user_key(&guess, &wrapped, &handle, LoginMethod::Password).is_err());
        }
    }
}

proptest! {
    #[test]
    fn a_recovery_key_unwraps_its_user_key_and_only_with_the_same_pepper(
        bytes in any::<[u8; 20]>(), pepper in any::<[u8; 32]>(), other_pepper in any::<[u8; 32]>(),
    ) {
        let handle = Handle([3; 32]);
        let recovery = RecoveryKey::from_bytes(bytes);
        let key = recovery.wrapping_key(&Pepper::from_bytes(pepper));
        let wrapped =
            wrap_user_key(&key, &UserKey::from_bytes([4; 32]), &handle, LoginMethod::Recovery)
                .unwrap();

        let typed = RecoveryKey::parse(&recovery.display().to_lowercase()).unwrap();
        let again = typed.wrapping_key(&Pepper::from_bytes(pepper));
        prop_assert!(unwrap_user_key(&again, &wrapped, &handle, LoginMethod::Recovery).is_ok());
        if other_pepper != pepper {
            let other = recovery.wrapping_key(&Pepper::from_bytes(other_pepper));
            prop_assert!(unwrap_user_key(&other, &wrapped, &handle, LoginMethod::Recovery).is_err());
        }
    }
}

fn methods() -> impl Strategy<Value = Methods> {
    (0u8..32).prop_map(|bits| Methods::from_bits(bits).unwrap())
}

prop_compose! {
    fn claims()(
        handle in any::<[u8; 32]>(), uk in any::<[u8; 32]>(), epoch in any::<u64>(),
        jkt in any::<[u8; 32]>(), issued_at in any::<u64>(), expires_at in any::<u64>(),
        session_expires_at in any::<u64>(), methods in methods(), token_id in any::<[u8; 16]>(),
    ) -> TokenClaims {
        TokenClaims {
            handle: Handle(handle), user_key: UserKey::from_bytes(uk), epoch, jkt, issued_at,
            expires_at, session_expires_at, methods, token_id,
        }
    }
}

fn keys(id: u8) -> TokenKeys {
    TokenKeys::derive(&MasterSecret::from_base64(&"A".repeat(43)).unwrap(), id)
}

fn assert_same(opened: &TokenClaims, claims: &TokenClaims) {
    assert_eq!(opened.handle, claims.handle);
    assert_eq!(opened.user_key.expose(), claims.user_key.expose());
    assert_eq!(opened.epoch, claims.epoch);
    assert_eq!(opened.jkt, claims.jkt);
    assert_eq!(opened.issued_at, claims.issued_at);
    assert_eq!(opened.expires_at, claims.expires_at);
    assert_eq!(opened.session_expires_at, claims.session_expires_at);
    assert_eq!(opened.methods, claims.methods);
    assert_eq!(opened.token_id, claims.token_id);
}

/// The earliest time at which `claims` are expired.
fn expiry(claims: &TokenClaims) -> u64 {
    claims.expires_at.min(claims.session_expires_at)
}

proptest! {
    #[test]
    fn every_token_has_one_length_and_round_trips_before_expiry(claims in claims(), now in any::<u64>()) {
        let keys = keys(3);
        let token = keys.seal(&claims).unwrap();
        prop_assert_eq!(token.len(), TOKEN_LEN);
        prop_assert!(token.starts_with("v1."));

        let now = now % expiry(&claims).max(1);
        match keys.open(&token, now) {
            Ok(opened) => assert_same(&opened, &claims),
            Err(error) => {
                prop_assert_eq!(expiry(&claims), 0);
                prop_assert_eq!(error, TokenError::Expired);
            }
        }
    }

    #[test]
    fn a_token_is_expired_from_its_expiry_on(claims in claims(), after in any::<u64>()) {
        let keys = keys(3);
        let token = keys.seal(&claims).unwrap();
        let now = expiry(&claims).saturating_add(after % 1_000_000);
        prop_assert_eq!(keys.open(&token, now).err(), Some(TokenError::Expired));
    }

    #[test]
    fn a_changed_token_is_refused(
        claims in claims(), position in any::<usize>(), replacement in any::<u8>(),
        cut in any::<usize>(), extra in "[A-Za-z0-9_-]{1,8}",
    ) {
        let keys = keys(3);
        let token = keys.seal(&claims).unwrap();

        let mut changed = token.clone().into_bytes();
        let position = position % changed.len();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut symbol = alphabet[usize::from(replacement) % alphabet.len()];
        if symbol == changed[position] {
            symbol = if symbol == b'A' { b'B' } else { b'A' };
        }
        changed[position] = symbol;
        let changed = String::from_utf8(changed).unwrap();
        prop_assert!(keys.open(&changed, 0).is_err());

        let truncated = &token[..cut % token.len()];
        prop_assert_eq!(keys.open(truncated, 0).err(), Some(TokenError::Malformed));
        let extended = format!("{token}{extra}");
        prop_assert_eq!(keys.open(&extended, 0).err(), Some(TokenError::Malformed));
    }

    #[test]
    fn a_token_does_not_open_under_another_servers_key(claims in claims(), other in any::<[u8; 32]>()) {
        let token = keys(3).seal(&claims).unwrap();
        let stranger = TokenKeys::from_bytes(3, other, Some(other));
        prop_assert_eq!(stranger.open(&token, 0).err(), Some(TokenError::Invalid));
    }

    #[test]
    fn any_string_is_refused_without_a_panic(text in ".{0,300}", now in any::<u64>()) {
        prop_assert!(keys(3).open(&text, now).is_err());
    }

    #[test]
    fn any_token_shaped_string_is_refused_without_a_panic(
        body in prop::collection::vec(any::<u8>(), 175..=175),
    ) {
        use base64::Engine;
        let text = format!("v1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&body));
        prop_assert_eq!(text.len(), TOKEN_LEN);
        prop_assert!(keys(body[0]).open(&text, 0).is_err());
    }
}

#[test]
fn a_token_from_before_a_rotation_opens_and_one_from_two_rotations_back_does_not() {
    let master = MasterSecret::generate().unwrap();
    let claims = TokenClaims {
        handle: Handle([1; 32]),
        user_key: UserKey::from_bytes([2; 32]),
        epoch: 0,
        jkt: [3; 32],
        issued_at: 0,
        expires_at: 900,
        session_expires_at: 43_200,
        methods: Methods::PASSWORD.with(Methods::TOTP),
        token_id: [4; 16],
    };
    for id in [0u8, 1, 254, 255] {
        let before = ServerKeys::derive(&master, id).unwrap().tokens;
        let token = before.seal(&claims).unwrap();

        let after_one = TokenKeys::derive(&master, id.wrapping_add(1));
        assert_same(&after_one.open(&token, 10).unwrap(), &claims);
        let after_two = TokenKeys::derive(&master, id.wrapping_add(2));
        assert_eq!(after_two.open(&token, 10).err(), Some(TokenError::Invalid));
    }
}

#[test]
fn token_keys_without_a_previous_key_open_only_the_current_id() {
    let current = TokenKeys::from_bytes(5, [9; 32], None);
    let previous = TokenKeys::from_bytes(4, [9; 32], None);
    let claims = TokenClaims {
        handle: Handle([1; 32]),
        user_key: UserKey::from_bytes([2; 32]),
        epoch: 0,
        jkt: [3; 32],
        issued_at: 0,
        expires_at: 900,
        session_expires_at: 900,
        methods: Methods::login(LoginMethod::Passkey),
        token_id: [4; 16],
    };
    let token = previous.seal(&claims).unwrap();
    assert_eq!(current.open(&token, 1).err(), Some(TokenError::Invalid));
    assert!(current.open(&current.seal(&claims).unwrap(), 1).is_ok());
}

#[test]
fn methods_with_unknown_bits_are_refused() {
    assert_eq!(Methods::from_bits(1 << 5), None);
    assert!(
        Methods::PASSWORD
            .with(Methods::TOTP)
            .contains(Methods::TOTP)
    );
    assert!(!Methods::PASSWORD.contains(Methods::BACKUP_CODE));
}
