//! New API tokens: random, shown once; servers keep only their SHA-256
//! ([`ordo_api::auth::token_hash`]).

/// Why a token cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes for a token: {0}")]
pub struct TokenError(String);

/// A new random API token: 32 bytes from the OS, hex.
pub fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
