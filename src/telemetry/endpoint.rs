//! `GET /metrics` on its own listener (`--metrics-listen`): the metrics in Prometheus text format. It needs no
//! token, so that Prometheus scrapes it as it scrapes anything else; it is served over TLS when TLS is on. Keep the
//! listener where only the monitoring network reaches it.

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};

use super::Telemetry;

/// The content type of Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The router of the metrics listener.
pub fn router(telemetry: Telemetry) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(telemetry)
}

async fn metrics(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], telemetry.render().unwrap_or_default())
}
