//! The metrics listener's one route, `GET /metrics` (see [`crate::metrics`]). It is served
//! only on `--metrics-addr`, never on the API's listener: it needs no credential, so an
//! operator exposes it only where their Prometheus reaches it.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::hub::Hub;

/// The metrics listener's router.
pub fn router(hub: Hub) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(hub)
}

async fn scrape(State(hub): State<Hub>) -> Response {
    match hub.metrics().render(hub.store().pool_use()) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(%err, "rendering the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
