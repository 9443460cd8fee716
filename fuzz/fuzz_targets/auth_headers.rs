//! The `Authorization` header parsers: Bearer gives back a trimmed, non-empty token taken
//! from the header; Basic gives back exactly the user and password that were encoded, and
//! what it accepts re-encodes to the same credentials.
#![no_main]

use hubkeyd::http::extract::parse_bearer;
use hubkeyd::http::registry::parse_basic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(token) = parse_bearer(value) {
        assert!(!token.is_empty());
        assert_eq!(token, token.trim());
        assert!(value.contains(token));
        let (scheme, _) = value.trim().split_once(' ').unwrap();
        assert!(scheme.eq_ignore_ascii_case("bearer"));
        assert_eq!(parse_bearer(&format!("Bearer {token}")), Some(token));
    }
    if let Some((user, password)) = parse_basic(value) {
        assert!(!user.contains(':'), "the user name ends at the first colon");
        let encoded =
            data_encoding::BASE64.encode(format!("{user}:{}", password.as_str()).as_bytes());
        let again = parse_basic(&format!("Basic {encoded}")).unwrap();
        assert_eq!(again.0, user);
        assert_eq!(again.1.as_str(), password.as_str());
    }
    // The same bytes as the credentials of a well-formed Basic header.
    if let Some((user, password)) = value.split_once(':') {
        let header = format!("basic  {} ", data_encoding::BASE64.encode(value.as_bytes()));
        let (got_user, got_password) = parse_basic(&header).unwrap();
        assert_eq!(got_user, user);
        assert_eq!(got_password.as_str(), password);
    }
});
