//! The registry `scope` parameter parser (`TYPE:NAME:ACTIONS`, space-separated): what it
//! accepts re-renders to a parameter that parses to the same resources, with sorted, unique,
//! non-empty actions, names of at most 255 characters and at most 64 resources.
#![no_main]

use hubkeyd::registry::access::{parse_scopes, ScopeError, MAX_NAME, MAX_SCOPES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(param) = std::str::from_utf8(data) else {
        return;
    };
    match parse_scopes(&[param]) {
        Ok(resources) => {
            assert_eq!(resources.len(), param.split_whitespace().count());
            assert!(resources.len() <= MAX_SCOPES);
            for resource in &resources {
                assert!(!resource.kind.is_empty() && !resource.name.is_empty());
                assert!(resource.name.len() <= MAX_NAME);
                assert!(!resource.kind.contains(':'));
                assert!(resource.actions.windows(2).all(|pair| pair[0] < pair[1]));
                assert!(resource
                    .actions
                    .iter()
                    .all(|action| !action.is_empty() && !action.contains(',')));
            }
            let rendered = resources
                .iter()
                .map(|r| format!("{}:{}:{}", r.kind, r.name, r.actions.join(",")))
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(parse_scopes(&[rendered]).as_ref(), Ok(&resources));
        }
        Err(ScopeError::Syntax(shown)) => assert!(shown.chars().count() <= 80),
        Err(ScopeError::TooMany) => assert!(param.split_whitespace().count() > MAX_SCOPES),
    }
});
