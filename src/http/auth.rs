//! Bearer tokens on the HTTP endpoint: the middleware every protected route goes through.
//!
//! A request presents its token in `authorization: Bearer TOKEN`, in the `alertstream_token` cookie, or once as
//! `?token=TOKEN` (a browser's EventSource cannot send a header): a valid query token is answered with the cookie
//! (HttpOnly, SameSite=Strict, Secure under TLS), so the page's later requests carry it. Anything else is 401 with
//! `{"error": ...}` and `WWW-Authenticate: Bearer`. Routes outside the middleware (`/healthz`, when it exists) stay
//! open.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::auth::{self, LiveTokens, Refusal};

/// The cookie that carries a token presented once in the query string.
pub const TOKEN_COOKIE: &str = "alertstream_token";

/// What the middleware checks against.
#[derive(Debug, Clone)]
pub struct HttpAuth {
    /// The live tokens; `None` lets every request through.
    pub tokens: Option<LiveTokens>,
    /// Whether the endpoint is served over TLS (the cookie is then `Secure`).
    pub tls: bool,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The middleware: passes a request with a valid token on, answers 401 to any other.
pub async fn require_token(State(auth): State<HttpAuth>, request: Request, next: Next) -> Response {
    let Some(tokens) = &auth.tokens else { return next.run(request).await };
    let presented = Presented::of(&request);
    let verdict = {
        let tokens = tokens.borrow();
        match &presented {
            Presented::Header(value) => auth::check(&tokens, Some(value.as_bytes())),
            Presented::Cookie(token) | Presented::Query(token) => tokens.verify(token.as_bytes()),
            Presented::Nothing => Err(Refusal::Missing),
        }
    };
    if let Err(refusal) = verdict {
        let mut response =
            (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({ "error": refusal.message() }))).into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let mut response = next.run(request).await;
    if let Presented::Query(token) = presented {
        let secure = if auth.tls { "; Secure" } else { "" };
        let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Where a request's token came from, first found in this order: header, cookie, query.
enum Presented {
    Header(HeaderValue),
    Cookie(String),
    Query(String),
    Nothing,
}

impl Presented {
    fn of(request: &Request) -> Self {
        if let Some(value) = request.headers().get(header::AUTHORIZATION) {
            return Presented::Header(value.clone());
        }
        if let Some(token) = cookie(request.headers()) {
            return Presented::Cookie(token);
        }
        match axum::extract::Query::<TokenQuery>::try_from_uri(request.uri()) {
            Ok(axum::extract::Query(TokenQuery { token: Some(token) })) => Presented::Query(token),
            _ => Presented::Nothing,
        }
    }
}

/// The token cookie's value, if the request carries it.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('=').map(str::to_owned))
}
