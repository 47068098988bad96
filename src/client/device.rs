//! This device's DPoP key, kept in the config directory and made on first use.
//!
//! The key never leaves `device.key` (mode 0600) except as the public JWK inside each proof. This
//! module must never print, log or send the private key.

use std::io;

use blindfold_actors::crypto::dpop::{DeviceKey, DeviceKeyError};

use super::config::{ConfigDir, DEVICE_KEY_FILE};
use super::error::ClientError;
use super::http::ProofSigner;

impl ProofSigner for DeviceKey {
    fn proof(
        &self,
        method: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> String {
        DeviceKey::proof(self, method, htu, access_token, nonce, iat)
    }
}

/// The device key stored in `config`, or a new P-256 key stored there first.
pub(crate) fn load_or_create(config: &ConfigDir) -> Result<DeviceKey, ClientError> {
    let path = config.path().join(DEVICE_KEY_FILE);
    let bytes = config.device_key_bytes(|| match DeviceKey::generate_p256() {
        Ok(key) => Ok(key.to_bytes()),
        Err(DeviceKeyError::NoRandomness | DeviceKeyError::Invalid) => Err(ClientError::File {
            path: path.clone(),
            source: io::Error::other("no randomness available to make a device key"),
        }),
    })?;
    DeviceKey::from_bytes(&bytes).map_err(|_| ClientError::DeviceKey { path })
}

#[cfg(test)]
mod tests {
    use blindfold_actors::crypto::dpop::{ProofContext, verify};

    use super::*;

    #[test]
    fn the_device_key_made_on_first_use_is_the_one_loaded_afterwards() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        let first = load_or_create(&config).unwrap();
        let again = load_or_create(&config).unwrap();
        assert_eq!(first.thumbprint(), again.thumbprint());
        assert_eq!(first.algorithm(), "ES256");
    }

    #[test]
    fn a_damaged_device_key_file_is_reported_not_replaced() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        super::super::config::write_atomic(root.path(), DEVICE_KEY_FILE, b"junk").unwrap();
        assert!(matches!(
            load_or_create(&config),
            Err(ClientError::DeviceKey { .. })
        ));
        assert_eq!(
            std::fs::read(root.path().join(DEVICE_KEY_FILE)).unwrap(),
            b"junk"
        );
    }

    #[test]
    fn a_proof_from_the_stored_key_passes_the_servers_check_with_the_token_bound() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        let key = load_or_create(&config).unwrap();
        let signer: &dyn ProofSigner = &key;

        let url = "http://127.0.0.1:8080/v1/me";
        let proof = signer.proof("GET", url, Some("v1.token"), None, 1_700_000_000);
        let context = ProofContext {
            method: "GET",
            url,
            access_token: Some("v1.token"),
            now: 1_700_000_000,
            max_age_secs: 60,
            nonce_key: None,
        };
        assert_eq!(
            verify(&proof, &context).unwrap().thumbprint,
            key.thumbprint()
        );

        let other_token = ProofContext {
            access_token: Some("v1.other"),
            ..context
        };
        assert!(verify(&proof, &other_token).is_err());
    }
}
