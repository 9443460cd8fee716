//! The OpenAPI document is complete enough for schemathesis' conformance checks to mean
//! something (`scripts/schemathesis` runs them), and the answers schemathesis-style input
//! provoked are JSON in the documented shapes, not axum's plain text.

use hubkey_api::{RegistryErrorBody, ValidationErrorBody};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::harness::{password_session, TestServer, PASSWORD};

const METHODS: [&str; 5] = ["get", "post", "patch", "put", "delete"];

async fn document(server: &TestServer) -> Value {
    reqwest::get(format!("{}/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    found
}

#[tokio::test]
async fn openapi_document_lists_every_answer_a_handler_can_give() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let operations = operations(&doc);
    assert_eq!(operations.len(), 35, "every route is documented");
    for (method, path, operation) in &operations {
        let responses = operation["responses"].as_object().unwrap();
        let name = format!("{method} {path}");
        for code in ["408", "500"] {
            assert!(responses.contains_key(code), "{name} documents {code}");
        }
        if operation.get("requestBody").is_some() {
            assert!(responses.contains_key("413"), "{name} documents 413");
            assert!(responses.contains_key("400"), "{name} documents 400");
        }
        let bearer = operation["security"]
            .as_array()
            .is_some_and(|list| list.iter().any(|entry| entry.get("bearer").is_some()));
        if bearer {
            assert!(responses.contains_key("401"), "{name} documents 401");
        }
        for (code, response) in responses {
            if let Some(content) = response.get("content") {
                // The device verification page is a page: HTML, whatever its status.
                let kind = if path == "/device" {
                    "text/html"
                } else {
                    "application/json"
                };
                assert!(content.get(kind).is_some(), "{name} {code} is {kind}");
            } else {
                assert!(
                    ["204", "408"].contains(&code.as_str()),
                    "{name} {code} has a body schema"
                );
            }
        }
    }
    for (method, path) in [
        ("post", "/v2/users/login"),
        ("post", "/v2/users/2fa-login"),
        ("post", "/v2/auth/token"),
        ("put", "/v2/users/password"),
        ("get", "/token"),
        ("post", "/token"),
        ("post", "/v2/credentials/revoke"),
    ] {
        let throttled = &doc["paths"][path][method]["responses"]["429"];
        assert!(
            throttled["headers"].get("Retry-After").is_some(),
            "{method} {path} documents 429 with Retry-After"
        );
    }
    let list = &doc["paths"]["/v2/access-tokens"]["get"]["parameters"];
    let param = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(param("page")["minimum"], 1);
    assert_eq!(param("page_size")["minimum"], 1);
    assert_eq!(param("page_size")["maximum"], 100);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
}

/// Sends `body` raw and returns the status, the content type and the body as JSON.
async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", server.url))
        .body(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{path}: answer is not JSON: {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, content_type, json)
}

#[tokio::test]
async fn undecodable_bodies_and_paths_get_json_errors_not_plain_text() {
    let server = TestServer::start().await;
    server.add_user("ann", PASSWORD).await;
    let session = password_session(&server.client(), "ann", PASSWORD).await;
    let bearer = Some(session.token.as_str());
    let too_large = vec![b'a'; 70 * 1024];
    use reqwest::Method;

    // The registry token endpoint's form: registry clients print `details`.
    for (body, status) in [(vec![0xff, 0xfe], 400), (too_large.clone(), 413)] {
        let (got, content_type, json) = send(&server, Method::POST, "/token", None, body).await;
        assert_eq!(got, status);
        assert_eq!(content_type, "application/json");
        let body: RegistryErrorBody = serde_json::from_value(json).unwrap();
        assert!(!body.details.is_empty());
    }

    // desktop-generate reads its optional body raw; too large is a 413 and creates nothing.
    let (status, content_type, json) = send(
        &server,
        Method::POST,
        "/v2/access-tokens/desktop-generate",
        bearer,
        too_large,
    )
    .await;
    assert_eq!((status, content_type.as_str()), (413, "application/json"));
    let body: ValidationErrorBody = serde_json::from_value(json).unwrap();
    assert_eq!(body.text, "request body is too large");
    let client = server.client().with_token(session.token.clone());
    assert_eq!(client.list_tokens(1, 10).await.unwrap().count, 0);

    // Percent-encoded bytes that are not UTF-8 in a path parameter.
    for path in ["/v2/access-tokens/%FF", "/v2/repositories/%FF/app"] {
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            if path.starts_with("/v2/repositories") && method == Method::DELETE {
                continue;
            }
            let (status, content_type, json) =
                send(&server, method.clone(), path, bearer, Vec::new()).await;
            assert_eq!(status, 400, "{method} {path}");
            assert_eq!(content_type, "application/json");
            let body: ValidationErrorBody = serde_json::from_value(json).unwrap();
            assert!(
                body.fields.contains_key("path"),
                "{method} {path}: {body:?}"
            );
        }
    }
}

#[tokio::test]
async fn error_bodies_document_their_machine_readable_code() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["ErrorBody"]["properties"].get("code").is_some(),
        "ErrorBody documents `code`: {}",
        schemas["ErrorBody"]
    );
    let codes = schemas["ErrorCode"]["enum"].as_array().unwrap();
    for code in ["challenge_expired", "session_revoked"] {
        assert!(codes.contains(&Value::from(code)), "{codes:?}");
    }
}
