//! The HTTP edge: routes, extractors, error bodies and the OpenAPI document.

pub mod client_address;
pub mod cross_site;
pub mod device_page;
pub mod error;
pub mod extract;
pub mod leaks;
pub mod metrics;
pub mod oauth;
pub mod registry;
pub mod routes;
mod state;
pub mod two_factor;

pub use state::{AppState, Site};

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use hubkey_api::ErrorBody;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::metrics::{Exchange, Outcome};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest a request may take before the server gives up on it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole API as an OpenAPI 3.1 document.
#[derive(OpenApi)]
#[openapi(
    info(title = "hubkeyd", description = "Docker Hub compatible personal-access-token API, with hubkey's extensions."),
    paths(
        routes::healthz, routes::info, routes::login, routes::login_2fa, routes::refresh, routes::logout,
        routes::change_password, routes::revoke_all_sessions, routes::account_events,
        routes::auth_token, routes::create_token, routes::list_tokens, routes::get_token,
        routes::patch_token, routes::delete_token, routes::desktop_generate, routes::events,
        registry::token_get, registry::token_post, registry::get_repository,
        registry::patch_repository, oauth::device_code, oauth::token, device_page::show,
        two_factor::status, two_factor::enrol, two_factor::confirm, two_factor::disable,
        two_factor::recovery_codes, leaks::secret_scanning_github, leaks::revoke_credentials,
        leaks::rotate_token, leaks::account_settings, leaks::patch_account_settings,
        leaks::token_activity,
    ),
    modifiers(&BearerAuth, &CommonResponses),
)]
pub struct ApiDoc;

/// Answers that follow from an operation's shape rather than its handler, stated once:
/// every bearer operation may answer 401 (with `WWW-Authenticate`), every operation with a
/// body 413 (over [`BODY_LIMIT`]), and every operation 408 (past [`REQUEST_TIMEOUT`]) and 500
/// (opaque; the cause is logged). An operation that documents one of them itself keeps its own.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::security::SecurityRequirement;
        use utoipa::openapi::{ContentBuilder, Ref, Response, ResponseBuilder, Type};

        fn json(description: &str, schema: &str) -> ResponseBuilder {
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build(),
            )
        }
        let unauthorized: Response = json("No, an invalid or an expired bearer token", "ErrorBody")
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(utoipa::openapi::schema::Object::with_type(Type::String))
                    .description(Some("`Bearer realm=\"hubkey\"`"))
                    .build(),
            )
            .build();
        let too_large: Response = json("Body over 64 KiB", "ValidationErrorBody").build();
        let timeout: Response = ResponseBuilder::new()
            .description("The request took longer than 30 s; nothing was answered")
            .build();
        let internal: Response = json(
            "Internal error; the body is opaque and the cause is logged",
            "ErrorBody",
        )
        .build();
        let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());

        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let uses_bearer = operation
                    .security
                    .as_ref()
                    .is_some_and(|list| list.contains(&bearer));
                let has_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                let mut add = |code: &str, response: &Response| {
                    responses
                        .entry(code.to_owned())
                        .or_insert_with(|| response.clone().into());
                };
                if uses_bearer {
                    add("401", &unauthorized);
                }
                if has_body {
                    add("413", &too_large);
                }
                add("408", &timeout);
                add("500", &internal);
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route of hubkeyd, with its middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/openapi.json", get(openapi))
        .route("/v2/hubkey/info", get(routes::info))
        .route("/v2/users/login", post(routes::login))
        .route("/v2/users/2fa-login", post(routes::login_2fa))
        .route("/v2/users/refresh", post(routes::refresh))
        .route("/v2/users/logout", post(routes::logout))
        .route("/v2/users/password", put(routes::change_password))
        .route(
            "/v2/users/sessions/revoke-all",
            post(routes::revoke_all_sessions),
        )
        .route("/v2/users/security-events", get(routes::account_events))
        .route("/v2/users/2fa", get(two_factor::status))
        .route("/v2/users/2fa/enrol", post(two_factor::enrol))
        .route("/v2/users/2fa/confirm", post(two_factor::confirm))
        .route("/v2/users/2fa/disable", post(two_factor::disable))
        .route(
            "/v2/users/2fa/recovery-codes",
            post(two_factor::recovery_codes),
        )
        .route(
            "/v2/auth/token",
            post(routes::auth_token).layer(axum::middleware::from_fn_with_state(
                (state.clone(), Exchange::AuthToken),
                count_exchange,
            )),
        )
        .route("/oauth/device/code", post(oauth::device_code))
        .route("/oauth/token", post(oauth::token))
        .route(
            "/device",
            get(device_page::show).post(device_page::submit_code),
        )
        .route("/device/sign-in", post(device_page::submit_sign_in))
        .route("/device/2fa", post(device_page::submit_second_factor))
        .route("/device/decide", post(device_page::submit_decision))
        .route("/device/style.css", get(device_page::stylesheet))
        .route(
            "/v2/access-tokens",
            get(routes::list_tokens).post(routes::create_token),
        )
        .route(
            "/v2/access-tokens/desktop-generate",
            post(routes::desktop_generate),
        )
        .route("/v2/access-tokens/events", get(routes::events))
        .route(
            "/v2/access-tokens/{uuid}",
            get(routes::get_token)
                .patch(routes::patch_token)
                .delete(routes::delete_token),
        )
        .route(
            "/token",
            get(registry::token_get)
                .post(registry::token_post)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    cross_site::refuse_cross_site,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    (state.clone(), Exchange::Registry),
                    count_exchange,
                )),
        )
        .route(
            "/v2/repositories/{namespace}/{name}",
            get(registry::get_repository).patch(registry::patch_repository),
        )
        .route(
            "/v2/secret-scanning/github",
            post(leaks::secret_scanning_github)
                .layer(DefaultBodyLimit::max(leaks::SECRET_SCANNING_BODY_LIMIT)),
        )
        .route("/v2/credentials/revoke", post(leaks::revoke_credentials))
        .route("/v2/access-tokens/{uuid}/rotate", post(leaks::rotate_token))
        .route(
            "/v2/access-tokens/{uuid}/activity",
            get(leaks::token_activity),
        )
        .route(
            "/v2/users/settings",
            get(leaks::account_settings).patch(leaks::patch_account_settings),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_throttled,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Outside the trace layer, so the request's span already names its client.
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies().clone(),
            client_address::resolve,
        ))
        .with_state(state)
}

/// Middleware: counts a token exchange by the status of its answer (so requests refused
/// before the handler, cross-site or malformed, count as `invalid`).
async fn count_exchange(
    State((state, exchange)): State<(AppState, Exchange)>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    state
        .hub
        .metrics()
        .token_exchange(exchange, Outcome::of_status(response.status()));
    response
}

/// Middleware: counts every 429 answer.
async fn count_throttled(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        state.hub.metrics().throttled();
    }
    response
}

/// The span of one request: method, URI and the client's address (see [`client_address`]).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let client = request
        .extensions()
        .get::<client_address::ClientAddress>()
        .map(|client_address::ClientAddress(ip)| *ip);
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        version = ?request.version(),
        client = client.map(tracing::field::display),
    )
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn not_found() -> (StatusCode, Json<ErrorBody>) {
    (StatusCode::NOT_FOUND, Json(ErrorBody::new("Not found")))
}
