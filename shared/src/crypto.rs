//! Crypto used across processes: secrets encrypted at rest (AES-256-GCM), password hashing
//! (argon2id), token hashing (SHA-256) and random token generation.

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use base64::{
    engine::general_purpose::STANDARD as B64, engine::general_purpose::URL_SAFE_NO_PAD, Engine,
};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};

/// Encrypts and decrypts secrets stored in Postgres (access tokens, app secrets, LLM keys).
/// Format: `v1:` + base64(nonce || ciphertext). The version prefix lets us rotate schemes.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("encrypted value is malformed")]
    Malformed,
    #[error("encrypted value cannot be decrypted with this key")]
    WrongKey,
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("v1:{}", B64.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let body = stored.strip_prefix("v1:").ok_or(CryptoError::Malformed)?;
        let raw = B64.decode(body).map_err(|_| CryptoError::Malformed)?;
        if raw.len() < 12 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Malformed)
    }
}

/// SHA-256 of a bearer secret (API key, refresh token). We store only this, so a database
/// leak does not leak usable credentials; lookups stay exact and indexed.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// `bytes` of randomness, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Verifies a password against a stored PHC hash. A malformed hash never verifies.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a fixed string, verified against when the user does not exist so that a login
/// for an unknown email takes as long as one for a known email.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not-a-real-password-0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_box_round_trips_and_rejects_other_keys() {
        let a = SecretBox::new(&[7u8; 32]);
        let b = SecretBox::new(&[8u8; 32]);
        let sealed = a.encrypt("EAAB-token");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("EAAB"));
        assert_eq!(a.decrypt(&sealed).unwrap(), "EAAB-token");
        assert!(matches!(b.decrypt(&sealed), Err(CryptoError::WrongKey)));
        assert!(matches!(a.decrypt("garbage"), Err(CryptoError::Malformed)));
    }

    #[test]
    fn passwords_verify_only_with_the_right_input() {
        let h = hash_password("Correct-horse-1");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("Correct-horse-1", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not-a-hash"));
    }
}
