//! The token scope parser: a single scope parses only from its wire name; a parsed list
//! round-trips through `join_list`; a refusal names the offending part, bounded in length.
#![no_main]

use hubkey_api::Scope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<Scope>() {
        Ok(scope) => assert_eq!(scope.as_str(), text),
        Err(err) => {
            assert!(Scope::ALL.iter().all(|scope| scope.as_str() != text));
            assert!(err.0.chars().count() <= 64);
        }
    }
    match Scope::parse_list(text) {
        Ok(scopes) => {
            let joined = Scope::join_list(&scopes);
            assert_eq!(Scope::parse_list(&joined).as_ref(), Ok(&scopes));
            let parts: Vec<&str> = text.split(',').filter(|part| !part.is_empty()).collect();
            assert_eq!(parts.len(), scopes.len());
            for (part, scope) in parts.iter().zip(&scopes) {
                assert_eq!(*part, scope.as_str());
            }
            // The JSON wire form round-trips too.
            let json = serde_json::to_string(&scopes).unwrap();
            assert_eq!(serde_json::from_str::<Vec<Scope>>(&json).unwrap(), scopes);
        }
        Err(err) => assert!(text.split(',').any(|part| !part.is_empty()
            && part.parse::<Scope>().is_err()
            && part.chars().take(64).collect::<String>() == err.0)),
    }
});
