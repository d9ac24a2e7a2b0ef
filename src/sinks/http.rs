//! The HTTP client of the webhook and Alertmanager sinks: reqwest on this server's rustls provider (ring) with the
//! platform's certificate roots, bounded in time.

use std::{sync::Arc, time::Duration};

use rustls_platform_verifier::BuilderVerifierExt as _;

use super::runner::DeliveryError;

/// The longest a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one sink.
pub(super) fn client() -> Result<reqwest::Client, String> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// What an HTTP answer means for the alerts it was about: delivered, to be tried again (the server failing, busy
/// or slow: 5xx, 429, 408), or refused for good (any other 4xx).
pub(super) fn outcome(response: Result<reqwest::Response, reqwest::Error>) -> Result<(), DeliveryError> {
    let response = response.map_err(|e| DeliveryError::Retry(without_url(e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(DeliveryError::Retry(format!("the server answered {status}")))
    } else {
        Err(DeliveryError::Reject(format!("the server answered {status}")))
    }
}

/// A request error without its URL, which may carry a secret.
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
