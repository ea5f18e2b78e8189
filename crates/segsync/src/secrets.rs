//! Secrets at rest: connection credentials are sealed with ChaCha20-Poly1305 under a master
//! key that lives in the home folder (`master.key`, created with mode 0600) or comes from
//! `SEGSYNC_MASTER_KEY` (64 hex characters or base64 of 32 bytes). The connection's name is
//! bound in as associated data, so a sealed secret cannot be moved to another connection.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

pub const MASTER_KEY_ENV: &str = "SEGSYNC_MASTER_KEY";

/// The key that seals every stored credential. Never printed.
pub struct MasterKey(Key);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{MASTER_KEY_ENV} must be 32 bytes as 64 hex characters or base64")]
    BadEnvKey,
    #[error("the master key file {0} is not 32 bytes: restore it from a backup, or remove it and add the connections again")]
    BadKeyFile(String),
    #[error("cannot read or create the master key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("a stored secret could not be decrypted: the master key changed or the secret was tampered with")]
    Decrypt,
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    let bytes = if t.len() == 64 {
        hex::decode(t).ok()?
    } else {
        base64::engine::general_purpose::STANDARD.decode(t).ok()?
    };
    bytes.try_into().ok()
}

impl MasterKey {
    /// The key from `SEGSYNC_MASTER_KEY`, else from `home/master.key`, created if missing.
    pub fn load_or_create(home: &Path) -> Result<MasterKey, SecretError> {
        if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
            let k = decode_key(&v).ok_or(SecretError::BadEnvKey)?;
            return Ok(MasterKey(Key::from(k)));
        }
        let path = home.join("master.key");
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let k: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| SecretError::BadKeyFile(path.display().to_string()))?;
                Ok(MasterKey(Key::from(k)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path).map_err(io)?;
                f.write_all(&k).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(MasterKey(Key::from(k)))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Seals `secret` for connection `name`: 12 bytes of nonce, then the ciphertext.
    pub fn seal(&self, name: &str, secret: &SecretString) -> Vec<u8> {
        let cipher = ChaCha20Poly1305::new(&self.0);
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose_secret().as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .expect("encryption of a short secret does not fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<SecretString, SecretError> {
        if sealed.len() < 12 {
            return Err(SecretError::Decrypt);
        }
        let cipher = ChaCha20Poly1305::new(&self.0);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed[..12]),
                Payload {
                    msg: &sealed[12..],
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt)?;
        let text = String::from_utf8(plain).map_err(|_| SecretError::Decrypt)?;
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_connection_and_key() {
        let dir = std::env::temp_dir().join(format!("segsync-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let k = MasterKey::load_or_create(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let secret = SecretString::from("0123456789abcdef0123456789abcdef-us6".to_string());
        let sealed = k.seal("main", &secret);
        assert!(!String::from_utf8_lossy(&sealed).contains("0123456789abcdef"));
        assert_eq!(
            k.open("main", &sealed).unwrap().expose_secret(),
            secret.expose_secret()
        );
        assert!(k.open("other", &sealed).is_err());
        let again = MasterKey::load_or_create(&dir).unwrap();
        assert!(
            again.open("main", &sealed).is_ok(),
            "the key file is reused"
        );
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
