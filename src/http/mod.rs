//! The HTTP/JSON endpoint: `POST /v1/evaluate` with `{"temperature": 8, "pH": 4}`, so the classic per-datapoint
//! client runs unchanged but for its URL; `GET /v1/rules`, the rules as proto3 JSON; the live web view at `/` with
//! its server-sent events at `/events` ([`view`]); and `GET /healthz`, open to probes without a token: 200 while
//! serving, 503 while draining.
//!
//! The body is taken as bytes and parsed with serde_json, whatever its content type: axum's `Json` extractor would
//! answer 415 without a JSON content type (the classic client sends none), 422 on a type error and plain-text 413.

pub mod auth;
mod json;
pub(crate) use json::{AlertJson, reading_from_json};
mod view;

use std::{sync::Arc, time::Duration};

use alertstream_engine::validate_time;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{clock::Clock, reload::LiveRules, view::ViewHub};

pub use json::DEFAULT_SENSOR_ID;

/// What the endpoint answers from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    rules: LiveRules,
    /// A reading's receive time.
    clock: Clock,
    /// How far ahead of the clock a reading's `time` may be.
    max_future: Duration,
    /// Cancelled when the server starts draining.
    draining: CancellationToken,
    /// What the streams tell the live view.
    view: ViewHub,
    /// Cancelled when the endpoint stops: the live view's event streams end, so the server can finish.
    closing: CancellationToken,
}

impl Endpoint {
    /// An endpoint over the live `rules`, with receive times from `clock` (a reading's `time` at most `max_future`
    /// ahead of it), that reports draining once `draining` is cancelled, shows what the streams tell `view`, and ends
    /// its event streams once `closing` is cancelled.
    pub fn new(
        rules: LiveRules,
        clock: Clock,
        max_future: Duration,
        draining: CancellationToken,
        view: ViewHub,
        closing: CancellationToken,
    ) -> Self {
        Self { rules, clock, max_future, draining, view, closing }
    }
}

/// The router of the HTTP endpoint; bodies over `max_body_size` bytes get 413. Every route but `/healthz` needs a
/// bearer token when `auth` has tokens ([`auth::require_token`]): the open routes are merged in after the
/// `route_layer`.
pub fn router(endpoint: Endpoint, max_body_size: usize, auth: auth::HttpAuth) -> Router {
    let open = Router::new().route("/healthz", get(healthz));
    Router::new()
        .route("/v1/evaluate", post(evaluate))
        .route("/v1/rules", get(rules))
        .route("/", get(view::page))
        .route("/events", get(view::events))
        .route_layer(middleware::from_fn_with_state(auth, auth::require_token))
        .merge(open)
        .layer(DefaultBodyLimit::max(max_body_size))
        .with_state(endpoint)
}

/// 200 `{"status": "SERVING"}`, or 503 `{"status": "NOT_SERVING"}` once the server drains (gRPC health's names).
async fn healthz(State(endpoint): State<Endpoint>) -> Response {
    if endpoint.draining.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "NOT_SERVING" }))).into_response()
    } else {
        (StatusCode::OK, axum::Json(json!({ "status": "SERVING" }))).into_response()
    }
}

/// The live rules as the proto3 JSON of `ListRulesResponse`.
async fn rules(State(endpoint): State<Endpoint>) -> Response {
    let rules = Arc::clone(&endpoint.rules.borrow());
    (StatusCode::OK, axum::Json(json::rules_to_json(&rules))).into_response()
}

async fn evaluate(State(endpoint): State<Endpoint>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body is over the message size limit".to_owned());
        }
        Err(rejection) => return error(StatusCode::BAD_REQUEST, format!("cannot read the body: {rejection}")),
    };
    let now = endpoint.clock.now();
    let reading = match json::reading_from_json(&body, now) {
        Ok(reading) => reading,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Err(invalid) = validate_time(reading.time, now, endpoint.max_future) {
        return error(StatusCode::BAD_REQUEST, invalid.to_string());
    }
    let rules = Arc::clone(&endpoint.rules.borrow());
    match rules.evaluate_stateless(&reading) {
        Ok(evaluation) => (StatusCode::OK, axum::Json(json::evaluation_to_json(&evaluation))).into_response(),
        Err(invalid) => error(StatusCode::BAD_REQUEST, invalid.to_string()),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}
