//! The personal-access-token parser: a token that parses is exactly the input, re-renders
//! identically, and has the documented shape; a refusal is classified correctly.
#![no_main]

use hubkey_api::token::{looks_like_token, PREFIX, TOKEN_LEN};
use hubkey_api::{PatParseError, PlainToken, TokenDigest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(candidate) = std::str::from_utf8(data) else {
        return;
    };
    match PlainToken::parse(candidate) {
        Ok(token) => {
            assert_eq!(
                token.expose(),
                candidate,
                "a parsed token re-renders as given"
            );
            assert_eq!(candidate.len(), TOKEN_LEN);
            assert!(candidate.starts_with(PREFIX));
            assert!(looks_like_token(candidate));
            assert_eq!(token.digest(), TokenDigest::of(candidate));
            assert_eq!(token.digest().as_str().len(), 64);
            assert!(token.hint().ends_with(&candidate[TOKEN_LEN - 4..]));
            assert!(!format!("{token:?}").contains(&candidate[PREFIX.len()..]));
            assert_eq!(PlainToken::parse(token.expose()), Ok(token.clone()));
        }
        Err(PatParseError::Malformed) => assert!(!looks_like_token(candidate)),
        Err(PatParseError::BadChecksum) => assert!(looks_like_token(candidate)),
    }
});
