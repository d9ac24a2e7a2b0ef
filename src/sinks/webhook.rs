//! The webhook sink: POSTs each batch as `{"alerts": [...]}` (proto3 JSON alerts) to a URL, with the configured
//! headers.

use std::sync::Arc;

use alertstream_rules::Secret;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::{
    SinkAlert, http,
    runner::{Deliver, DeliveryError},
};
use crate::http::AlertJson;

/// What a webhook is sent: `{"alerts": [...]}`.
#[derive(serde::Serialize)]
struct Body<'a> {
    alerts: Vec<AlertJson<'a>>,
}

/// POSTs batches of alerts to one URL.
pub(super) struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
}

impl Webhook {
    pub(super) fn new(url: &str, headers: &[(String, Secret)]) -> Result<Self, String> {
        // The URL is not shown in errors: it may carry a secret.
        let url = reqwest::Url::parse(url).map_err(|e| format!("bad `url`: {e}"))?;
        let mut map = HeaderMap::new();
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|e| format!("header `{name}`: {e}"))?;
            let mut value = HeaderValue::try_from(value.expose()).map_err(|_| format!("header `{name}`: bad value"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        Ok(Self { client: http::client()?, url, headers: map })
    }
}

impl Deliver for Webhook {
    async fn deliver(&mut self, batch: &[Arc<SinkAlert>]) -> Result<(), DeliveryError> {
        let body = Body { alerts: batch.iter().map(|a| AlertJson { alert: &a.alert, stale: a.stale }).collect() };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let request = self.client.post(self.url.clone()).headers(self.headers.clone()).body(body);
        http::outcome(request.send().await)
    }
}
