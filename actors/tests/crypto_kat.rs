//! Known-answer tests through the code paths blindfold runs: RFC 8452 AES-256-GCM-SIV through
//! `blindfold_events::aead`, RFC 9106 Argon2id, the password key against argon2's own output,
//! and every server-key label against an independent HKDF computation.

use argon2::{Algorithm, Argon2, AssociatedData, Block, ParamsBuilder, Version};
use blindfold_actors::crypto::dpop::NonceKey;
use blindfold_actors::crypto::keys::{MasterSecret, ServerKeys, TokenKeys};
use blindfold_actors::crypto::password::{
    self, Password, Pepper, derive_password_key, derive_password_key_with_memory,
};
use blindfold_actors::crypto::recovery::RecoveryKey;
use blindfold_actors::crypto::token::{Methods, TokenClaims};
use blindfold_actors::crypto::user_key::{
    LoginMethod, UserKey, WRAPPED_USER_KEY_LEN, unwrap_user_key, wrap_user_key,
};
use blindfold_actors::crypto::username::normalize;
use blindfold_events::aead::{open, seal_with_nonce};
use blindfold_events::{Handle, KdfParams};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn hex(text: &str) -> Vec<u8> {
    let text: String = text.split_whitespace().collect();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hkdf(ikm: &[u8], salt: Option<&[u8]>, label: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(label.as_bytes(), &mut out)
        .unwrap();
    out
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// RFC 8452 Appendix C.2 (AEAD_AES_256_GCM_SIV) vectors with empty associated data: key, nonce,
/// plaintext, ciphertext ‖ tag. `seal_with_nonce` with no aad parts authenticates empty aad.
const RFC8452_EMPTY_AAD: &[(&str, &str, &str, &str)] = &[
    (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "030000000000000000000000",
        "",
        "07f5f4169bbf55a8400cd47ea6fd400f",
    ),
    (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "030000000000000000000000",
        "0100000000000000",
        "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28",
    ),
    (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "030000000000000000000000",
        "010000000000000000000000",
        "9aab2aeb3faa0a34aea8e2b18ca50da9ae6559e48fd10f6e5c9ca17e",
    ),
    (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "030000000000000000000000",
        "0100000000000000000000000000000002000000000000000000000000000000",
        "4a6a9db4c8c6549201b9edb53006cba821ec9cf850948a7c86c68ac7539d027f\
         e819e63abcd020b006a976397632eb5d",
    ),
    (
        "e66021d5eb8e4f4066d4adb9c33560e4f46e44bb3da0015c94f7088736864200",
        "e0eaf5284d884a0e77d31646",
        "",
        "169fbb2fbf389a995f6390af22228a62",
    ),
];

#[test]
fn aes_256_gcm_siv_matches_the_rfc_8452_vectors_through_blindfolds_aead() {
    for (key, nonce, plaintext, expected) in RFC8452_EMPTY_AAD {
        let key: [u8; 32] = hex(key).try_into().unwrap();
        let nonce: [u8; 12] = hex(nonce).try_into().unwrap();
        let plaintext = hex(plaintext);

        let sealed = seal_with_nonce(&key, &nonce, &[], &plaintext).unwrap();
        assert_eq!(&sealed[..12], &nonce);
        assert_eq!(&sealed[12..], &hex(expected)[..]);
        assert_eq!(&open(&key, &[], &sealed).unwrap()[..], &plaintext[..]);
    }
}

/// RFC 9106 §5.3: Argon2id v0x13, m = 32 KiB, t = 3, p = 4, password 32 × 0x01, salt 16 × 0x02,
/// secret 8 × 0x03, associated data 12 × 0x04.
#[test]
fn argon2id_matches_the_rfc_9106_vector() {
    let params = ParamsBuilder::new()
        .m_cost(32)
        .t_cost(3)
        .p_cost(4)
        .data(AssociatedData::new(&[0x04; 12]).unwrap())
        .output_len(32)
        .build()
        .unwrap();
    let argon2 =
        Argon2::new_with_secret(&[0x03; 8], Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut tag = [0u8; 32];
    argon2
        .hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag)
        .unwrap();

    let expected = hex("0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
    assert_eq!(&tag[..], &expected[..]);
}

#[test]
fn the_password_key_is_argon2id_v0x13_with_the_pepper_as_secret() {
    let params = KdfParams {
        m_cost_kib: 32,
        t_cost: 3,
        p_cost: 4,
    };
    let pepper = [0x03; 32];
    let key = derive_password_key(
        &Password::from(vec![0x01; 32]),
        &[0x02; 16],
        &params,
        &Pepper::from_bytes(pepper),
    )
    .unwrap();

    let argon2_params = argon2::Params::new(32, 3, 4, Some(32)).unwrap();
    let argon2 =
        Argon2::new_with_secret(&pepper, Algorithm::Argon2id, Version::V0x13, argon2_params)
            .unwrap();
    let mut expected = [0u8; 32];
    argon2
        .hash_password_into(&[0x01; 32], &[0x02; 16], &mut expected)
        .unwrap();

    assert_eq!(key.expose(), &expected);
}

#[test]
fn a_reused_memory_buffer_gives_the_same_key_and_is_wiped_afterwards() {
    let params = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let pepper = Pepper::from_bytes([9; 32]);
    let password = Password::from("correct horse");
    let expected = derive_password_key(&password, &[5; 16], &params, &pepper).unwrap();

    let mut memory = vec![Block::new(); password::memory_blocks(&params) + 3];
    for _ in 0..2 {
        let key =
            derive_password_key_with_memory(&password, &[5; 16], &params, &pepper, &mut memory)
                .unwrap();
        assert_eq!(key.expose(), expected.expose());
        assert!(
            memory
                .iter()
                .all(|block| block.as_ref().iter().all(|word| *word == 0))
        );
    }
}

#[test]
fn a_memory_buffer_too_small_for_the_params_is_refused() {
    let params = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let mut memory = vec![Block::new(); 8];
    let outcome = derive_password_key_with_memory(
        &Password::from("pw"),
        &[5; 16],
        &params,
        &Pepper::from_bytes([9; 32]),
        &mut memory,
    );
    assert_eq!(outcome.err(), Some(password::KdfError::Params));
}

#[test]
fn out_of_range_params_are_refused_before_any_memory_is_taken() {
    let huge = KdfParams {
        m_cost_kib: u32::MAX,
        t_cost: 1,
        p_cost: 1,
    };
    assert_eq!(password::memory_blocks(&huge), 0);
    assert!(password::kdf_memory(&huge).is_err());
    let outcome = derive_password_key(
        &Password::from("pw"),
        &[5; 16],
        &huge,
        &Pepper::from_bytes([9; 32]),
    );
    assert_eq!(outcome.err(), Some(password::KdfError::Params));
}

fn master() -> ([u8; 32], MasterSecret) {
    let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
    let encoded = base64_standard(&bytes);
    (bytes, MasterSecret::from_base64(&encoded).unwrap())
}

fn base64_standard(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn the_index_key_and_handles_use_their_label() {
    let (bytes, master) = master();
    let keys = ServerKeys::derive(&master, 0).unwrap();
    let index = hkdf(&bytes, None, "blindfold/v1/index");

    let handle = keys.index.handle(&normalize("Alice").unwrap());
    assert_eq!(handle, Handle(hmac(&index, b"alice")));
}

#[test]
fn the_storage_key_uses_its_label() {
    let (bytes, master) = master();
    let keys = ServerKeys::derive(&master, 0).unwrap();
    assert_eq!(
        keys.storage.expose(),
        &hkdf(&bytes, None, "blindfold/v1/storage")
    );
}

#[test]
fn the_decoy_salt_is_the_truncated_hmac_under_its_label() {
    let (bytes, master) = master();
    let keys = ServerKeys::derive(&master, 0).unwrap();
    let decoy = hkdf(&bytes, None, "blindfold/v1/decoy-salt");
    let handle = Handle([7; 32]);

    assert_eq!(
        keys.decoy.salt_for(&handle)[..],
        hmac(&decoy, &handle.0)[..16]
    );
}

#[test]
fn the_decoy_recovery_wrap_is_two_hmac_blocks_under_its_label_and_no_recovery_key_opens_it() {
    let (bytes, master) = master();
    let keys = ServerKeys::derive(&master, 0).unwrap();
    let decoy = hkdf(&bytes, None, "blindfold/v1/decoy-salt");
    let handle = Handle([7; 32]);
    let label = b"blindfold/v1/decoy-wrapped-user-key";
    let block = |i: u8| hmac(&decoy, &[&label[..], &handle.0, &[i]].concat());
    let expected = [block(0), block(1)].concat();

    let wrapped = keys.decoy.wrapped_user_key_for(&handle);
    assert_eq!(wrapped.len(), WRAPPED_USER_KEY_LEN);
    assert_eq!(wrapped[..], expected[..WRAPPED_USER_KEY_LEN]);
    assert_ne!(wrapped, keys.decoy.wrapped_user_key_for(&Handle([8; 32])));
    let guess = RecoveryKey::from_bytes([3; 20]).wrapping_key(&keys.pepper);
    assert!(unwrap_user_key(&guess, &wrapped, &handle, LoginMethod::Recovery).is_err());
}

#[test]
fn the_pepper_uses_its_label() {
    let (bytes, master) = master();
    let keys = ServerKeys::derive(&master, 0).unwrap();
    let expected = Pepper::from_bytes(hkdf(&bytes, None, "blindfold/v1/pepper"));

    let params = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let password = Password::from("pw");
    let derived = derive_password_key(&password, &[1; 16], &params, &keys.pepper).unwrap();
    let reference = derive_password_key(&password, &[1; 16], &params, &expected).unwrap();
    assert_eq!(derived.expose(), reference.expose());
}

#[test]
fn the_dpop_nonce_key_uses_its_label() {
    let (bytes, master) = master();
    let keys = ServerKeys::derive(&master, 0).unwrap();
    let expected = NonceKey::from_bytes(hkdf(&bytes, None, "blindfold/v1/dpop-nonce"));

    let nonce = keys.dpop_nonce.issue(1_000);
    assert!(expected.accepts(&nonce, 1_000, 60));
}

#[test]
fn each_token_key_id_uses_its_own_label() {
    let (bytes, master) = master();
    for id in [0u8, 7, 255] {
        let keys = ServerKeys::derive(&master, id).unwrap();
        let label = format!("blindfold/v1/token/{id}");
        let reference = TokenKeys::from_bytes(id, hkdf(&bytes, None, &label), None);

        let token = reference.seal(&sample_claims()).unwrap();
        assert!(keys.tokens.open(&token, 10).is_ok());
    }
}

#[test]
fn the_recovery_wrapping_key_is_hkdf_with_the_pepper_as_salt() {
    let pepper = [4u8; 32];
    let recovery = RecoveryKey::from_bytes([6; 20]);
    let key = recovery.wrapping_key(&Pepper::from_bytes(pepper));
    assert_eq!(
        key.expose(),
        &hkdf(&[6; 20], Some(&pepper), "blindfold/v1/recovery")
    );
}

#[test]
fn a_user_key_wrap_is_the_documented_aead_with_its_binding() {
    let key = password::WrappingKey::from_bytes([8; 32]);
    let user_key = UserKey::from_bytes([2; 32]);
    let handle = Handle([3; 32]);
    let wrapped = wrap_user_key(&key, &user_key, &handle, LoginMethod::Recovery).unwrap();

    let aad: [&[u8]; 3] = [b"blindfold/v1/uk", &handle.0, &[2]];
    let opened = open(&[8; 32], &aad, &wrapped).unwrap();
    assert_eq!(&opened[..], &[2; 32]);
    assert!(unwrap_user_key(&key, &wrapped, &handle, LoginMethod::Recovery).is_ok());
}

fn sample_claims() -> TokenClaims {
    TokenClaims {
        handle: Handle([1; 32]),
        user_key: UserKey::from_bytes([2; 32]),
        epoch: 3,
        jkt: [4; 32],
        issued_at: 5,
        expires_at: 100,
        session_expires_at: 200,
        methods: Methods::PASSWORD,
        token_id: [6; 16],
    }
}
