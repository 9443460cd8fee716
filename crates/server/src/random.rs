//! Random secrets that are not personal access tokens.

use rand::rngs::OsRng;
use rand::RngCore;

/// 256 random bits from the OS CSPRNG, URL-safe base64: refresh tokens, 2FA challenges, the
/// password hasher's decoy.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}
