//! DPoP (RFC 9449) end to end: proofs written by `DeviceKey` and checked by `verify`, every named
//! way a proof can be wrong, thumbprints against published values, the replay cache, nonces, and
//! property tests that no input panics or passes by accident.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use blindfold_actors::crypto::dpop::{
    DeviceKey, NonceKey, ProofContext, ProofError, ReplayCache, ReplayError, Thumbprint, verify,
};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NOW: u64 = 1_700_000_000;
const METHOD: &str = "POST";
const URL: &str = "https://id.example/v1/sessions";
const TOKEN: &str = "v1.an-access-token";

fn context() -> ProofContext<'static> {
    ProofContext {
        method: METHOD,
        url: URL,
        access_token: None,
        now: NOW,
        max_age_secs: 60,
        nonce_key: None,
    }
}

fn keys() -> [DeviceKey; 2] {
    [
        DeviceKey::generate_p256().unwrap(),
        DeviceKey::generate_ed25519().unwrap(),
    ]
}

fn header(key: &DeviceKey) -> Value {
    json!({ "typ": "dpop+jwt", "alg": key.algorithm(), "jwk": key.public_jwk() })
}

fn claims() -> Value {
    json!({ "jti": "a-unique-id", "htm": METHOD, "htu": URL, "iat": NOW })
}

/// Signs `header`/`claims` with every key kind (after `edit` adapts them to the key) and checks
/// the verdict.
fn assert_each_key_rejects(
    expected: ProofError,
    ctx: &ProofContext<'_>,
    edit: impl Fn(&DeviceKey, &mut Value, &mut Value),
) {
    for key in keys() {
        let (mut header, mut claims) = (header(&key), claims());
        edit(&key, &mut header, &mut claims);
        let proof = key.sign_jws(&header, &claims);
        assert_eq!(
            verify(&proof, ctx),
            Err(expected),
            "{} proof",
            key.algorithm()
        );
    }
}

fn encode_json(value: &Value) -> String {
    BASE64URL.encode(value.to_string())
}

mod round_trips {
    use super::*;

    #[test]
    fn an_es256_proof_verifies_and_names_its_key() {
        let key = DeviceKey::generate_p256().unwrap();
        let proof = key.proof(METHOD, URL, None, None, NOW);
        let verified = verify(&proof, &context()).unwrap();
        assert_eq!(verified.thumbprint, key.thumbprint());
        assert_eq!(verified.iat, NOW);
    }

    #[test]
    fn an_eddsa_proof_verifies_and_names_its_key() {
        let key = DeviceKey::generate_ed25519().unwrap();
        let proof = key.proof(METHOD, URL, None, None, NOW);
        let verified = verify(&proof, &context()).unwrap();
        assert_eq!(verified.thumbprint, key.thumbprint());
    }

    #[test]
    fn a_proof_with_a_token_and_a_nonce_verifies() {
        let nonce_key = NonceKey::from_bytes([5u8; 32]);
        let nonce = nonce_key.issue(NOW - 10);
        let ctx = ProofContext {
            access_token: Some(TOKEN),
            nonce_key: Some(&nonce_key),
            ..context()
        };
        for key in keys() {
            let proof = key.proof(METHOD, URL, Some(TOKEN), Some(&nonce), NOW);
            assert!(verify(&proof, &ctx).is_ok(), "{}", key.algorithm());
        }
    }

    #[test]
    fn two_proofs_from_one_key_have_different_jti_digests() {
        let key = DeviceKey::generate_p256().unwrap();
        let first = verify(&key.proof(METHOD, URL, None, None, NOW), &context()).unwrap();
        let second = verify(&key.proof(METHOD, URL, None, None, NOW), &context()).unwrap();
        assert_ne!(first.jti_digest, second.jti_digest);
    }

    #[test]
    fn the_same_jti_from_two_keys_gives_two_jti_digests() {
        let [p256, ed25519] = keys();
        let first = verify(&p256.sign_jws(&header(&p256), &claims()), &context()).unwrap();
        let second = verify(&ed25519.sign_jws(&header(&ed25519), &claims()), &context()).unwrap();
        assert_ne!(first.jti_digest, second.jti_digest);
    }

    #[test]
    fn unknown_claims_and_header_members_are_allowed() {
        assert!(keys().iter().all(|key| {
            let mut header = header(key);
            header["kid"] = json!("device-1");
            let mut claims = claims();
            claims["extra"] = json!({ "nested": [1, 2, 3] });
            verify(&key.sign_jws(&header, &claims), &context()).is_ok()
        }));
    }

    #[test]
    fn a_url_with_another_query_or_a_fragment_is_accepted() {
        let ctx = ProofContext {
            url: "https://id.example/v1/sessions?page=2",
            ..context()
        };
        assert_each_key_accepts(&ctx, |claims| {
            claims["htu"] = json!(format!("{URL}?page=1#top"))
        });
    }

    #[test]
    fn a_proof_issued_a_little_in_the_future_is_accepted() {
        assert_each_key_accepts(&context(), |claims| claims["iat"] = json!(NOW + 5));
    }

    #[test]
    fn a_proof_exactly_max_age_old_is_accepted() {
        assert_each_key_accepts(&context(), |claims| claims["iat"] = json!(NOW - 60));
    }

    fn assert_each_key_accepts(ctx: &ProofContext<'_>, edit: impl Fn(&mut Value)) {
        for key in keys() {
            let mut claims = claims();
            edit(&mut claims);
            let proof = key.sign_jws(&header(&key), &claims);
            assert!(verify(&proof, ctx).is_ok(), "{}", key.algorithm());
        }
    }
}

mod rfc_vectors {
    use super::*;

    /// RFC 9449 Figure 2 (§4.1): an ES256 proof for `POST https://server.example.com/token`.
    const RFC9449_PROOF: &str = concat!(
        "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgt",
        "MzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VO",
        "SmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFR",
        "jIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0Ijo",
        "xNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FN",
        "yJK70nfbV37xRZT3Lg",
    );

    #[test]
    fn the_proof_published_in_rfc_9449_verifies_with_its_published_thumbprint() {
        let ctx = ProofContext {
            method: "POST",
            url: "https://server.example.com/token",
            access_token: None,
            now: 1_562_262_616,
            max_age_secs: 60,
            nonce_key: None,
        };
        let verified = verify(RFC9449_PROOF, &ctx).unwrap();
        // RFC 9449 Figure 9 / §6.1: the jkt of the Figure 2 key.
        assert_eq!(
            verified.thumbprint.to_base64url(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn the_thumbprint_of_the_rfc_7517_ec_key_is_the_hash_of_its_canonical_members() {
        // RFC 7517 Appendix A.1, first key; canonical form per RFC 7638 §3.2, written out here.
        let x = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
        let y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
        let canonical = concat!(
            r#"{"crv":"P-256","kty":"EC","#,
            r#""x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","#,
            r#""y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#,
        );
        let expected = BASE64URL.encode(Sha256::digest(canonical.as_bytes()));

        let x: [u8; 32] = BASE64URL.decode(x).unwrap().try_into().unwrap();
        let y: [u8; 32] = BASE64URL.decode(y).unwrap().try_into().unwrap();
        assert_eq!(Thumbprint::of_p256(&x, &y).to_base64url(), expected);
    }

    #[test]
    fn the_thumbprint_of_the_rfc_8037_ed25519_key_is_the_published_one() {
        // RFC 8037 Appendix A.2 public key and A.3 thumbprint.
        let x: [u8; 32] = BASE64URL
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            Thumbprint::of_ed25519(&x).to_base64url(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn a_device_key_thumbprint_is_the_hash_of_its_own_public_jwk_in_canonical_order() {
        for key in keys() {
            let jwk = key.public_jwk();
            let canonical = match key.algorithm() {
                "ES256" => format!(
                    r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
                    jwk["x"], jwk["y"]
                ),
                _ => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, jwk["x"]),
            };
            assert_eq!(
                key.thumbprint().0,
                <[u8; 32]>::from(Sha256::digest(canonical.as_bytes()))
            );
        }
    }
}

mod header_attacks {
    use super::*;

    #[test]
    fn a_proof_over_four_kibibytes_is_rejected_before_anything_else() {
        let key = DeviceKey::generate_ed25519().unwrap();
        let mut claims = claims();
        claims["padding"] = json!("p".repeat(4096));
        assert_eq!(
            verify(&key.sign_jws(&header(&key), &claims), &context()),
            Err(ProofError::TooLarge)
        );
        assert_eq!(
            verify(&"a".repeat(4097), &context()),
            Err(ProofError::TooLarge)
        );
    }

    #[test]
    fn a_named_set_of_malformed_proofs_is_rejected() {
        let key = DeviceKey::generate_p256().unwrap();
        let valid = key.proof(METHOD, URL, None, None, NOW);
        let (header, rest) = valid.split_once('.').unwrap();
        let (payload, signature) = rest.split_once('.').unwrap();
        let not_object = BASE64URL.encode("[1,2]");
        let not_json = BASE64URL.encode("{typ");
        let bad = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.{signature}.{signature}"),
            format!("{header}=.{payload}.{signature}"),
            format!("{header}.{payload}.{signature}="),
            format!("{header}.{payload}+.{signature}"),
            format!(" {header}.{payload}.{signature}"),
            format!("{not_object}.{payload}.{signature}"),
            format!("{not_json}.{payload}.{signature}"),
            // Claims are read only once signed, so these are signed.
            key.sign_jws(&super::header(&key), &json!([1, 2])),
            key.sign_jws(&super::header(&key), &json!("claims")),
            key.sign_jws(&super::header(&key), &json!({ "htm": 1 })),
        ];
        for proof in &bad {
            assert_eq!(
                verify(proof, &context()),
                Err(ProofError::Malformed),
                "{proof:?}"
            );
        }
    }

    #[test]
    fn a_proof_of_another_type_is_rejected() {
        assert_each_key_rejects(ProofError::WrongType, &context(), |_, header, _| {
            header["typ"] = json!("JWT");
        });
        assert_each_key_rejects(ProofError::WrongType, &context(), |_, header, _| {
            header.as_object_mut().unwrap().remove("typ");
        });
    }

    #[test]
    fn an_unsigned_proof_with_alg_none_is_rejected() {
        let key = DeviceKey::generate_p256().unwrap();
        let mut header = header(&key);
        header["alg"] = json!("none");
        for signature in ["", "AAAA"] {
            let proof = format!(
                "{}.{}.{signature}",
                encode_json(&header),
                encode_json(&claims())
            );
            assert_eq!(
                verify(&proof, &context()),
                Err(ProofError::UnsupportedAlgorithm)
            );
        }
    }

    #[test]
    fn an_hs256_proof_keyed_with_the_public_key_is_rejected() {
        for key in keys() {
            let mut header = header(&key);
            header["alg"] = json!("HS256");
            let signing_input = format!("{}.{}", encode_json(&header), encode_json(&claims()));

            // The classic confusion: use the public key, which the verifier knows, as an HMAC key.
            let public_key = key.public_jwk().to_string();
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(public_key.as_bytes()).unwrap();
            mac.update(signing_input.as_bytes());
            let tag = BASE64URL.encode(mac.finalize().into_bytes());

            let proof = format!("{signing_input}.{tag}");
            assert_eq!(
                verify(&proof, &context()),
                Err(ProofError::UnsupportedAlgorithm)
            );
        }
    }

    #[test]
    fn an_rs256_proof_is_rejected() {
        let header = json!({
            "typ": "dpop+jwt",
            "alg": "RS256",
            "jwk": { "kty": "RSA", "n": BASE64URL.encode([0xc3u8; 256]), "e": "AQAB" },
        });
        let proof = format!(
            "{}.{}.{}",
            encode_json(&header),
            encode_json(&claims()),
            BASE64URL.encode([1u8; 256])
        );
        assert_eq!(
            verify(&proof, &context()),
            Err(ProofError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn other_algorithm_names_and_spellings_are_rejected() {
        for alg in ["ES384", "ES256K", "Ed25519", "es256", "eddsa", "PS256", ""] {
            assert_each_key_rejects(
                ProofError::UnsupportedAlgorithm,
                &context(),
                |_, header, _| {
                    header["alg"] = json!(alg);
                },
            );
        }
    }

    #[test]
    fn a_jwk_with_a_private_member_is_rejected() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert_each_key_rejects(ProofError::PrivateKey, &context(), |_, header, _| {
                header["jwk"][member] = json!("AAAA");
            });
        }
        assert_each_key_rejects(ProofError::PrivateKey, &context(), |_, header, _| {
            header["jwk"]["d"] = Value::Null;
        });
    }

    #[test]
    fn a_real_private_key_in_the_jwk_is_rejected() {
        for key in keys() {
            let mut header = header(&key);
            header["jwk"]["d"] = json!(BASE64URL.encode(&key.to_bytes()[1..]));
            let proof = key.sign_jws(&header, &claims());
            assert_eq!(verify(&proof, &context()), Err(ProofError::PrivateKey));
        }
    }

    #[test]
    fn a_jwk_of_the_wrong_curve_for_the_algorithm_is_rejected() {
        let [p256, ed25519] = keys();
        let mut swapped = header(&p256);
        swapped["jwk"] = ed25519.public_jwk();
        assert_eq!(
            verify(&p256.sign_jws(&swapped, &claims()), &context()),
            Err(ProofError::BadKey)
        );

        let mut swapped = header(&ed25519);
        swapped["jwk"] = p256.public_jwk();
        assert_eq!(
            verify(&ed25519.sign_jws(&swapped, &claims()), &context()),
            Err(ProofError::BadKey)
        );

        assert_each_key_rejects(ProofError::BadKey, &context(), |key, header, _| {
            header["jwk"]["crv"] = json!(if key.algorithm() == "ES256" {
                "P-384"
            } else {
                "X25519"
            });
        });
    }

    #[test]
    fn a_jwk_with_a_short_or_missing_coordinate_is_rejected() {
        assert_each_key_rejects(ProofError::BadKey, &context(), |_, header, _| {
            header["jwk"]["x"] = json!(BASE64URL.encode([1u8; 31]));
        });
        assert_each_key_rejects(ProofError::BadKey, &context(), |_, header, _| {
            header["jwk"].as_object_mut().unwrap().remove("x");
        });
    }

    #[test]
    fn a_p256_point_off_the_curve_is_a_bad_key() {
        let key = DeviceKey::generate_p256().unwrap();
        let mut header = header(&key);
        header["jwk"]["y"] = json!(BASE64URL.encode([1u8; 32]));
        assert_eq!(
            verify(&key.sign_jws(&header, &claims()), &context()),
            Err(ProofError::BadKey)
        );
    }

    #[test]
    fn a_proof_without_a_jwk_or_naming_its_key_elsewhere_is_rejected() {
        assert_each_key_rejects(ProofError::MissingKey, &context(), |_, header, _| {
            let header = header.as_object_mut().unwrap();
            header.remove("jwk");
            header.insert("kid".into(), json!("device-1"));
        });
        for member in ["x5c", "x5u", "jku", "crit"] {
            assert_each_key_rejects(ProofError::ForbiddenHeader, &context(), |_, header, _| {
                header[member] = json!(["https://attacker.example/key"]);
            });
        }
    }

    #[test]
    fn a_repeated_header_member_is_malformed() {
        let key = DeviceKey::generate_ed25519().unwrap();
        let jwk = key.public_jwk().to_string();
        let header = format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","alg":"none","jwk":{jwk}}}"#);
        let valid = key.proof(METHOD, URL, None, None, NOW);
        let (_, payload_and_signature) = valid.split_once('.').unwrap();
        let proof = format!("{}.{payload_and_signature}", BASE64URL.encode(header));
        assert_eq!(verify(&proof, &context()), Err(ProofError::Malformed));
    }
}

mod signature_and_claims {
    use super::*;

    #[test]
    fn a_proof_with_one_signature_bit_flipped_is_rejected() {
        for key in keys() {
            let proof = key.proof(METHOD, URL, None, None, NOW);
            let (signing_input, signature) = proof.rsplit_once('.').unwrap();
            for bit in [0, 100, 511] {
                let mut signature = BASE64URL.decode(signature).unwrap();
                signature[bit / 8] ^= 1 << (bit % 8);
                let forged = format!("{signing_input}.{}", BASE64URL.encode(&signature));
                assert_eq!(verify(&forged, &context()), Err(ProofError::BadSignature));
            }
        }
    }

    #[test]
    fn a_proof_signed_by_another_key_is_rejected() {
        for (named, impostor) in [
            (
                DeviceKey::generate_p256().unwrap(),
                DeviceKey::generate_p256().unwrap(),
            ),
            (
                DeviceKey::generate_ed25519().unwrap(),
                DeviceKey::generate_ed25519().unwrap(),
            ),
        ] {
            let proof = impostor.sign_jws(&header(&named), &claims());
            assert_eq!(verify(&proof, &context()), Err(ProofError::BadSignature));
        }
    }

    #[test]
    fn a_truncated_signature_is_rejected() {
        for key in keys() {
            let proof = key.proof(METHOD, URL, None, None, NOW);
            let (signing_input, signature) = proof.rsplit_once('.').unwrap();
            let short = &BASE64URL.decode(signature).unwrap()[..63];
            let forged = format!("{signing_input}.{}", BASE64URL.encode(short));
            assert_eq!(verify(&forged, &context()), Err(ProofError::BadSignature));
        }
    }

    #[test]
    fn a_proof_for_another_method_is_rejected() {
        assert_each_key_rejects(ProofError::WrongMethod, &context(), |_, _, claims| {
            claims["htm"] = json!("GET");
        });
        assert_each_key_rejects(ProofError::WrongMethod, &context(), |_, _, claims| {
            claims["htm"] = json!("post");
        });
    }

    #[test]
    fn a_proof_for_another_url_or_path_is_rejected() {
        for htu in [
            "https://id.example/v1/accounts",
            "https://id.example/v1/sessions/",
            "https://other.example/v1/sessions",
            "http://id.example/v1/sessions",
        ] {
            assert_each_key_rejects(ProofError::WrongUrl, &context(), |_, _, claims| {
                claims["htu"] = json!(htu);
            });
        }
        assert_each_key_rejects(ProofError::WrongUrl, &context(), |_, _, claims| {
            claims.as_object_mut().unwrap().remove("htu");
        });
    }

    #[test]
    fn a_stale_proof_is_rejected() {
        assert_each_key_rejects(ProofError::Stale, &context(), |_, _, claims| {
            claims["iat"] = json!(NOW - 61);
        });
        assert_each_key_rejects(ProofError::Stale, &context(), |_, _, claims| {
            claims.as_object_mut().unwrap().remove("iat");
        });
    }

    #[test]
    fn a_proof_from_the_future_is_rejected() {
        assert_each_key_rejects(ProofError::IssuedInFuture, &context(), |_, _, claims| {
            claims["iat"] = json!(NOW + 6);
        });
        assert_each_key_rejects(ProofError::IssuedInFuture, &context(), |_, _, claims| {
            claims["iat"] = json!(u64::MAX);
        });
    }

    #[test]
    fn a_negative_or_fractional_iat_is_malformed() {
        for iat in [json!(-1), json!(1.5), json!("1700000000")] {
            assert_each_key_rejects(ProofError::Malformed, &context(), |_, _, claims| {
                claims["iat"] = iat.clone();
            });
        }
    }

    #[test]
    fn a_proof_without_a_jti_is_rejected() {
        assert_each_key_rejects(ProofError::MissingJti, &context(), |_, _, claims| {
            claims.as_object_mut().unwrap().remove("jti");
        });
        assert_each_key_rejects(ProofError::MissingJti, &context(), |_, _, claims| {
            claims["jti"] = json!("");
        });
    }

    #[test]
    fn a_jti_longer_than_128_characters_is_rejected() {
        assert_each_key_rejects(ProofError::JtiTooLong, &context(), |_, _, claims| {
            claims["jti"] = json!("j".repeat(129));
        });
        let mut exact = claims();
        exact["jti"] = json!("é".repeat(128));
        let key = DeviceKey::generate_ed25519().unwrap();
        assert!(verify(&key.sign_jws(&header(&key), &exact), &context()).is_ok());
    }

    #[test]
    fn a_proof_without_ath_is_rejected_when_a_token_comes_with_it() {
        let ctx = ProofContext {
            access_token: Some(TOKEN),
            ..context()
        };
        for key in keys() {
            let proof = key.proof(METHOD, URL, None, None, NOW);
            assert_eq!(verify(&proof, &ctx), Err(ProofError::MissingAth));
        }
    }

    #[test]
    fn a_proof_bound_to_another_token_is_rejected() {
        let ctx = ProofContext {
            access_token: Some(TOKEN),
            ..context()
        };
        for key in keys() {
            let proof = key.proof(METHOD, URL, Some("v1.another-token"), None, NOW);
            assert_eq!(verify(&proof, &ctx), Err(ProofError::WrongAth));
        }
    }

    #[test]
    fn an_ath_without_a_token_is_ignored() {
        for key in keys() {
            let proof = key.proof(METHOD, URL, Some(TOKEN), None, NOW);
            assert!(verify(&proof, &context()).is_ok());
        }
    }
}

mod nonces {
    use super::*;

    fn key() -> NonceKey {
        NonceKey::from_bytes([0x5au8; 32])
    }

    #[test]
    fn a_proof_without_a_nonce_is_asked_for_one_when_nonces_are_required() {
        let nonce_key = key();
        let ctx = ProofContext {
            nonce_key: Some(&nonce_key),
            ..context()
        };
        for key in keys() {
            let error = verify(&key.proof(METHOD, URL, None, None, NOW), &ctx).unwrap_err();
            assert_eq!(error, ProofError::UseNonce);
            assert_eq!(error.code(), "use_dpop_nonce");
        }
    }

    #[test]
    fn a_proof_with_an_expired_nonce_is_asked_for_a_new_one() {
        let nonce_key = key();
        let ctx = ProofContext {
            nonce_key: Some(&nonce_key),
            ..context()
        };
        let nonce = nonce_key.issue(NOW - 61);
        for key in keys() {
            let proof = key.proof(METHOD, URL, None, Some(&nonce), NOW);
            assert_eq!(verify(&proof, &ctx), Err(ProofError::UseNonce));
        }
    }

    #[test]
    fn a_proof_with_a_tampered_nonce_is_asked_for_a_new_one() {
        let nonce_key = key();
        let ctx = ProofContext {
            nonce_key: Some(&nonce_key),
            ..context()
        };
        let nonce = nonce_key.issue(NOW);
        let mut sealed = BASE64URL.decode(&nonce).unwrap();
        sealed[15] ^= 0x01;
        let tampered = BASE64URL.encode(&sealed);
        let foreign = NonceKey::from_bytes([0x5bu8; 32]).issue(NOW);
        for bad in [tampered.as_str(), foreign.as_str(), "", "not-a-nonce"] {
            for key in keys() {
                let proof = key.proof(METHOD, URL, None, Some(bad), NOW);
                assert_eq!(verify(&proof, &ctx), Err(ProofError::UseNonce), "{bad:?}");
            }
        }
    }

    #[test]
    fn a_nonce_from_the_future_beyond_clock_skew_is_refused() {
        let nonce_key = key();
        assert!(nonce_key.accepts(&nonce_key.issue(NOW + 5), NOW, 60));
        assert!(!nonce_key.accepts(&nonce_key.issue(NOW + 6), NOW, 60));
    }

    #[test]
    fn a_nonce_is_ignored_when_none_is_required() {
        for key in keys() {
            let proof = key.proof(METHOD, URL, None, Some("anything"), NOW);
            assert!(verify(&proof, &context()).is_ok());
        }
    }
}

mod replay {
    use super::*;

    #[test]
    fn a_proof_used_twice_is_refused_the_second_time() {
        let cache = ReplayCache::new(10, 60);
        let key = DeviceKey::generate_p256().unwrap();
        let verified = verify(&key.proof(METHOD, URL, None, None, NOW), &context()).unwrap();

        assert_eq!(
            cache.check_and_remember(verified.jti_digest, verified.iat, NOW),
            Ok(())
        );
        assert_eq!(
            cache.check_and_remember(verified.jti_digest, verified.iat, NOW + 30),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn an_entry_is_forgotten_once_its_window_has_passed() {
        let cache = ReplayCache::new(10, 60);
        cache.check_and_remember([1u8; 32], NOW, NOW).unwrap();
        assert_eq!(
            cache.check_and_remember([1u8; 32], NOW, NOW + 59),
            Err(ReplayError::Replayed)
        );

        // At NOW + 60 the proof is still fresh enough for `verify` (60 s old), so still remembered.
        assert_eq!(
            cache.check_and_remember([1u8; 32], NOW, NOW + 60),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            cache.check_and_remember([2u8; 32], NOW + 61, NOW + 61),
            Ok(())
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_proof_from_the_future_is_remembered_from_its_own_iat() {
        let cache = ReplayCache::new(10, 60);
        cache.check_and_remember([1u8; 32], NOW + 5, NOW).unwrap();
        assert_eq!(
            cache.check_and_remember([1u8; 32], NOW + 5, NOW + 64),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn a_full_cache_refuses_new_proofs_rather_than_forgetting_live_ones() {
        let cache = ReplayCache::new(3, 60);
        for byte in 0..3u8 {
            cache.check_and_remember([byte; 32], NOW, NOW).unwrap();
        }
        // The first of them is forgotten at NOW + 61: the refusal says when.
        assert_eq!(
            cache.check_and_remember([9u8; 32], NOW, NOW + 1),
            Err(ReplayError::Full {
                retry_after_secs: 60
            })
        );
        assert_eq!(
            cache.check_and_remember([0u8; 32], NOW, NOW + 1),
            Err(ReplayError::Replayed)
        );

        // Once the window passes, room comes back.
        assert_eq!(
            cache.check_and_remember([9u8; 32], NOW + 61, NOW + 61),
            Ok(())
        );
    }

    #[test]
    fn many_threads_never_both_accept_the_same_proof() {
        let cache = std::sync::Arc::new(ReplayCache::new(10_000, 60));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    (0..1_000u32)
                        .filter(|i| {
                            let mut digest = [0u8; 32];
                            digest[..4].copy_from_slice(&i.to_be_bytes());
                            cache.check_and_remember(digest, NOW, NOW).is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let accepted: usize = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .sum();
        assert_eq!(accepted, 1_000);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn nonce_key() -> NonceKey {
        NonceKey::from_bytes([3u8; 32])
    }

    fn strict_context<'a>(nonce_key: &'a NonceKey) -> ProofContext<'a> {
        ProofContext {
            access_token: Some(TOKEN),
            nonce_key: Some(nonce_key),
            ..context()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_verify(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let text = String::from_utf8_lossy(&bytes);
            prop_assert!(verify(&text, &context()).is_err());
        }

        #[test]
        fn random_strings_never_verify(text in ".{0,300}") {
            prop_assert!(verify(&text, &context()).is_err());
        }

        #[test]
        fn random_three_part_tokens_never_verify(
            text in "[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,120}"
        ) {
            prop_assert!(verify(&text, &context()).is_err());
        }

        #[test]
        fn random_json_parts_never_verify(
            header in any::<Vec<(String, u8)>>(),
            sig in any::<Vec<u8>>(),
        ) {
            let header: serde_json::Map<String, Value> =
                header.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let proof = format!(
                "{}.{}.{}",
                encode_json(&Value::Object(header)),
                encode_json(&claims()),
                BASE64URL.encode(sig)
            );
            prop_assert!(verify(&proof, &context()).is_err());
        }

        #[test]
        fn a_valid_proof_with_any_one_character_changed_never_verifies(
            ed25519 in any::<bool>(),
            position in any::<prop::sample::Index>(),
            replacement in prop::char::range('!', '~'),
        ) {
            let [p256, ed25519_key] = keys();
            let key = if ed25519 { ed25519_key } else { p256 };
            let nonce_key = nonce_key();
            let nonce = nonce_key.issue(NOW);
            let proof = key.proof(METHOD, URL, Some(TOKEN), Some(&nonce), NOW);
            let index = position.index(proof.len());
            prop_assume!(proof.as_bytes()[index] != replacement as u8);

            let mut forged = proof.into_bytes();
            forged[index] = replacement as u8;
            let forged = String::from_utf8(forged).unwrap();
            prop_assert!(verify(&forged, &strict_context(&nonce_key)).is_err());
        }
    }
}
