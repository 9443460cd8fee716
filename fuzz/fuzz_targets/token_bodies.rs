//! The JSON bodies of token create (`POST /v2/access-tokens`) and patch (`PATCH
//! /v2/access-tokens/{uuid}`), read by the handlers' own extractor and validated by the
//! service's own checks: refusals are 400 (or 413), never a panic or a 5xx, and what is
//! accepted keeps the documented invariants and round-trips through JSON.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, Utc};
use hubkey_api::{CreateAccessTokenRequest, PatchAccessTokenRequest};
use hubkeyd::http::extract::ApiJson;
use hubkeyd::hub::{check_create_request, check_patch_request, MAX_LABEL};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    })
}

/// Extracts `T` from `body` exactly as a handler's `ApiJson<T>` argument does.
fn extract<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    let request = Request::builder()
        .method("POST")
        .uri("/v2/access-tokens")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    match runtime().block_on(ApiJson::<T>::from_request(request, &())) {
        Ok(ApiJson(value)) => Some(value),
        Err(rejection) => {
            let status = rejection.status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
                "a malformed body is a 400 or 413, not {status}"
            );
            None
        }
    }
}

fn label_ok(label: &str) -> bool {
    !label.trim().is_empty() && label.chars().count() <= MAX_LABEL && !label.contains('\0')
}

fuzz_target!(|data: &[u8]| {
    // A fixed clock: "now" is a parameter of the service.
    let now: DateTime<Utc> = DateTime::from_timestamp(1_780_000_000, 0).unwrap();

    if let Some(request) = extract::<CreateAccessTokenRequest>(data) {
        let json = serde_json::to_vec(&request).unwrap();
        let again: CreateAccessTokenRequest = serde_json::from_slice(&json).unwrap();
        assert_eq!(serde_json::to_vec(&again).unwrap(), json);
        match check_create_request(&request, now) {
            Ok(checked) => {
                assert_eq!(checked.label, request.token_label);
                assert!(label_ok(checked.label));
                assert!(!checked.scopes.is_empty());
                assert!(checked.scopes.windows(2).all(|pair| pair[0] < pair[1]));
                assert!(request
                    .scopes
                    .iter()
                    .all(|scope| checked.scopes.contains(scope)));
                assert!(checked.expires_at.is_none_or(|at| at > now));
            }
            Err(err) => {
                assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);
                assert!(
                    !label_ok(&request.token_label)
                        || request.scopes.is_empty()
                        || request.expires_at.is_some_and(|at| at <= now)
                );
            }
        }
    }

    if let Some(patch) = extract::<PatchAccessTokenRequest>(data) {
        let json = serde_json::to_vec(&patch).unwrap();
        let again: PatchAccessTokenRequest = serde_json::from_slice(&json).unwrap();
        assert_eq!(serde_json::to_vec(&again).unwrap(), json);
        match check_patch_request(&patch) {
            Ok(label) => {
                assert_eq!(label, patch.token_label.as_deref());
                assert!(label.is_none_or(label_ok));
            }
            Err(err) => {
                assert_eq!(err.status_code(), StatusCode::BAD_REQUEST);
                assert!(patch.token_label.as_deref().is_some_and(|l| !label_ok(l)));
            }
        }
    }
});
