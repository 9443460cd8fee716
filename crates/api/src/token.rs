//! The personal-access-token format.
//!
//! A token reads `hkpat_`, then 30 base62 characters of randomness (178 bits from the OS
//! CSPRNG), then 6 base62 characters of CRC32 checksum over the prefix and body, e.g.
//! `hkpat_3fXk…Qm0a2Bc9`. The fixed prefix lets secret scanners find tokens; the checksum lets
//! them (and [`PlainToken::parse`]) reject a mistyped or made-up token offline, before any
//! database lookup. The server keeps only [`TokenDigest`], the SHA-256 of the whole token.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// The fixed prefix of every hubkey personal access token.
pub const PREFIX: &str = "hkpat_";
/// Characters of randomness after the prefix: 30 × log2(62) ≈ 178.6 bits.
pub const BODY_LEN: usize = 30;
/// Characters of checksum at the end: CRC32 in base62, zero-padded.
pub const CHECKSUM_LEN: usize = 6;
/// Length of a whole token.
pub const TOKEN_LEN: usize = PREFIX.len() + BODY_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed token. Neither case needs a database lookup; a
/// well-formed token the server does not know is the caller's third case, "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatParseError {
    /// Wrong prefix, length or alphabet: not a hubkey token at all.
    #[error("not a hubkey access token")]
    Malformed,
    /// Looks like a token but the checksum does not match: mistyped or made up.
    #[error("access token checksum does not match")]
    BadChecksum,
}

/// A plaintext personal access token. It exists in memory only between creation and the one
/// response that shows it, or between a request and its digest. `Debug` never prints it, and
/// the memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl PlainToken {
    /// Draws a new token from the OS CSPRNG: the random bytes in one call (one `getrandom`
    /// per token, where a call per character made seeding a million tokens take minutes).
    pub fn generate() -> Self {
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(PREFIX);
        let mut random = [0u8; RANDOM_BYTES];
        let mut body = Vec::with_capacity(BODY_LEN);
        while body.len() < BODY_LEN {
            OsRng.fill_bytes(&mut random);
            push_base62(&mut body, &random);
        }
        random.zeroize();
        token.extend(body.iter().map(|&b| char::from(b)));
        body.zeroize();
        let checksum = encode_checksum(crc32fast::hash(token.as_bytes()));
        token.push_str(&checksum);
        PlainToken(token)
    }

    /// Checks the prefix, length, alphabet and checksum of `candidate`.
    pub fn parse(candidate: &str) -> Result<Self, PatParseError> {
        if !looks_like_token(candidate) {
            return Err(PatParseError::Malformed);
        }
        let (payload, checksum) = candidate.split_at(TOKEN_LEN - CHECKSUM_LEN);
        if encode_checksum(crc32fast::hash(payload.as_bytes())) != checksum {
            return Err(PatParseError::BadChecksum);
        }
        Ok(PlainToken(candidate.to_owned()))
    }

    /// The SHA-256 digest under which the server stores and finds this token.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }

    /// The masked form shown in lists: prefix, an ellipsis and the last four characters.
    pub fn hint(&self) -> String {
        format!("{PREFIX}…{}", &self.0[TOKEN_LEN - 4..])
    }

    /// The secret itself, for the one place that must hand it over (the create response,
    /// the keyring, an Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken(<redacted>)")
    }
}

impl Drop for PlainToken {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// True when `candidate` has the prefix, length and alphabet of a token (checksum unchecked).
/// Servers use it to tell a PAT from a password in fields that accept both.
pub fn looks_like_token(candidate: &str) -> bool {
    candidate.len() == TOKEN_LEN
        && candidate.starts_with(PREFIX)
        && candidate[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// The SHA-256 of a token, hex-encoded: what the server stores and indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenDigest(String);

impl TokenDigest {
    /// Digest of any secret string (tokens, refresh tokens, 2FA challenges).
    pub fn of(secret: &str) -> Self {
        TokenDigest(data_encoding::HEXLOWER.encode(&Sha256::digest(secret.as_bytes())))
    }

    /// The hex form, 64 characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Random bytes drawn at a time for a token's body: 30 characters need 30 accepted bytes, and
/// a byte is refused with probability 8/256, so 64 bytes fall short about once in 10^27 draws
/// (then [`PlainToken::generate`] draws again).
const RANDOM_BYTES: usize = 64;

/// Appends to `body` (up to [`BODY_LEN`]) one base62 character per byte of `random` below
/// 248 = 4 × 62, the byte modulo 62: bytes from 248 up are skipped, so every character is
/// equally likely (a plain `% 62` of every byte would favour the first eight).
fn push_base62(body: &mut Vec<u8>, random: &[u8]) {
    let accepted = random
        .iter()
        .filter(|&&b| usize::from(b) < 4 * BASE62.len())
        .map(|&b| BASE62[usize::from(b) % BASE62.len()]);
    for character in accepted {
        if body.len() == BODY_LEN {
            break;
        }
        body.push(character);
    }
}

fn encode_checksum(mut crc: u32) -> String {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    // 62^6 > 2^32, so nothing is left over.
    digits.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let token = PlainToken::generate();
        assert_eq!(token.expose().len(), TOKEN_LEN);
        assert!(token.expose().starts_with(PREFIX));
        assert_eq!(PlainToken::parse(token.expose()), Ok(token.clone()));
        assert!(token.hint().starts_with("hkpat_…"));
        assert!(token.hint().ends_with(&token.expose()[TOKEN_LEN - 4..]));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = PlainToken::generate();
        assert!(!format!("{token:?}").contains(&token.expose()[PREFIX.len()..]));
    }

    #[test]
    fn body_characters_are_unbiased_and_bounded() {
        // Every byte value once: each of the 62 characters is made from exactly four of the
        // 248 accepted bytes, and the 8 highest bytes make none.
        let all: Vec<u8> = (0..=255).collect();
        let mut counts = [0usize; 62];
        for chunk in all.chunks(BODY_LEN) {
            let mut body = Vec::new();
            push_base62(&mut body, chunk);
            for character in body {
                let at = BASE62.iter().position(|&c| c == character).unwrap();
                counts[at] += 1;
            }
        }
        assert_eq!(counts, [4; 62]);
        // Never more than BODY_LEN characters, even from more accepted bytes.
        let mut body = Vec::new();
        push_base62(&mut body, &[0u8; 64]);
        assert_eq!(body, vec![b'0'; BODY_LEN]);
        // Refused bytes add nothing.
        let mut body = Vec::new();
        push_base62(&mut body, &[248, 255, 61]);
        assert_eq!(body, b"z");
    }

    #[test]
    fn two_tokens_differ() {
        assert_ne!(PlainToken::generate(), PlainToken::generate());
    }

    #[test]
    fn malformed_and_bad_checksum_are_told_apart() {
        assert_eq!(PlainToken::parse(""), Err(PatParseError::Malformed));
        assert_eq!(
            PlainToken::parse("dckr_pat_abc"),
            Err(PatParseError::Malformed)
        );
        let good = PlainToken::generate();
        let mut wrong_prefix = good.expose().to_owned();
        wrong_prefix.replace_range(0..1, "x");
        assert_eq!(
            PlainToken::parse(&wrong_prefix),
            Err(PatParseError::Malformed)
        );
        let mut with_dash = good.expose().to_owned();
        with_dash.replace_range(10..11, "-");
        assert_eq!(PlainToken::parse(&with_dash), Err(PatParseError::Malformed));
        let mut zeroed = good.expose().to_owned();
        zeroed.replace_range(TOKEN_LEN - CHECKSUM_LEN.., "000000");
        if zeroed != good.expose() {
            assert_eq!(PlainToken::parse(&zeroed), Err(PatParseError::BadChecksum));
        }
    }

    #[test]
    fn digest_is_sha256_hex() {
        // SHA-256("abc"), from FIPS 180-2.
        assert_eq!(
            TokenDigest::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// The pattern docs/secret-scanning.md gives scanners (the block after its
    /// `detector-regex` marker).
    fn documented_regex() -> regex::Regex {
        let doc = include_str!("../../../docs/secret-scanning.md");
        let after = doc
            .split_once("<!-- detector-regex -->")
            .expect("the marker")
            .1;
        let block = after
            .split_once("```regex\n")
            .expect("a regex block")
            .1
            .split_once("\n```")
            .expect("the block's end")
            .0;
        regex::Regex::new(block.trim()).expect("the documented pattern compiles")
    }

    #[test]
    fn detector_rules() {
        let pattern = documented_regex();
        for _ in 0..1000 {
            let token = PlainToken::generate();
            let text = format!("export HUBKEY_TOKEN=\"{}\" # ci\n", token.expose());
            let found: Vec<_> = pattern.find_iter(&text).map(|m| m.as_str()).collect();
            assert_eq!(found, [token.expose()]);
            // A changed character still matches the pattern; the checksum rejects it.
            let mut changed = token.expose().as_bytes().to_vec();
            let at = PREFIX.len() + (changed[10] as usize % (BODY_LEN + CHECKSUM_LEN));
            changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(pattern.is_match(&changed));
            assert_eq!(PlainToken::parse(&changed), Err(PatParseError::BadChecksum));
        }
        // Look-alikes the pattern does not take: inside a longer word, short, other prefixes.
        let token = PlainToken::generate();
        for miss in [
            format!("{}x", token.expose()),
            format!("x{}", token.expose()),
            token.expose()[..TOKEN_LEN - 1].to_owned(),
            token.expose().replace("hkpat_", "hkpat-"),
        ] {
            assert!(!pattern.is_match(&miss), "{miss}");
        }
    }

    fn token_strategy() -> impl Strategy<Value = PlainToken> {
        any::<u64>().prop_map(|_| PlainToken::generate())
    }

    proptest! {
        #[test]
        fn every_generated_token_round_trips(token in token_strategy()) {
            let parsed = PlainToken::parse(token.expose()).unwrap();
            prop_assert_eq!(parsed.digest(), token.digest());
        }

        #[test]
        fn any_one_character_change_is_caught(
            token in token_strategy(),
            position in PREFIX.len()..TOKEN_LEN,
            replacement in proptest::sample::select(BASE62.to_vec()),
        ) {
            let original = token.expose().as_bytes()[position];
            prop_assume!(original != replacement);
            let mut corrupted = token.expose().as_bytes().to_vec();
            corrupted[position] = replacement;
            let corrupted = String::from_utf8(corrupted).unwrap();
            // CRC32 detects every single-symbol error within its 32-bit span.
            prop_assert_eq!(PlainToken::parse(&corrupted), Err(PatParseError::BadChecksum));
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,60}") {
            let _ = PlainToken::parse(&s);
        }
    }
}
