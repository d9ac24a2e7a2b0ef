//! The Alertmanager sink: alerts as Prometheus Alertmanager's v2 API takes them (`POST /api/v2/alerts`), kept
//! alive while they fire, as Prometheus keeps its own.
//!
//! - Labels: `alertname` (the rule), `sensor_id`, `severity` and the rule's `labels`; annotations: `summary` (the
//!   message), `values` (the reading's, `pH=5.7 temperature=21`) and `explanation` (`pH = 5.7 > 5.5`); `startsAt`
//!   the reading's time.
//! - A FIRING alert is sent with `endsAt` four resend intervals ahead and sent again every `resend_interval`, so
//!   that Alertmanager's `resolve_timeout` never resolves a live alert, and an Alertmanager that restarted learns
//!   of it again. A RESOLVED alert is sent with the labels it fired with and `endsAt` its reading's time.
//! - A FIRING alert for a sensor and rule already firing under other labels (a reload changed the rule's labels or
//!   severity) resolves the old one first.
//! - An event (`events = true`) is sent once, ending one resend interval after it happened.
//! - A stale RESOLVED (its stream ended while it fired) carries the annotation `stale`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, SystemTime},
};

use alertstream_engine::{AlertState, RESERVED_NAMES};
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    SinkAlert, http,
    runner::{Deliver, DeliveryError, MAX_BATCH},
};
use crate::{
    clock::{Clock, timer_deadline},
    convert::timestamp_text,
};

/// How far ahead `endsAt` of a firing alert is, in resend intervals (Prometheus' own choice).
const ENDS_AFTER_INTERVALS: u32 = 4;

/// A firing alert as Alertmanager was last told of it.
#[derive(Debug, Clone, PartialEq)]
struct Posted {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: SystemTime,
}

impl Posted {
    fn of(sink_alert: &SinkAlert) -> Self {
        let alert = &sink_alert.alert;
        let mut labels = (*sink_alert.labels).clone();
        labels.insert("alertname".into(), alert.rule.to_string());
        labels.insert("sensor_id".into(), alert.sensor_id.to_string());
        labels.insert("severity".into(), alert.severity.as_str().to_owned());
        let mut values: Vec<String> = alert.values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        values.sort();
        let mut annotations = BTreeMap::from([
            ("summary".to_owned(), alert.message.to_string()),
            ("values".to_owned(), values.join(" ")),
        ]);
        if sink_alert.stale {
            let why = "its stream ended while it fired, and no stream fired it again";
            annotations.insert("stale".to_owned(), why.to_owned());
        }
        if !alert.explanation.is_empty() {
            let terms: Vec<String> = alert
                .explanation
                .iter()
                .map(|t| format!("{} = {} {} {}", t.expression, t.value, t.operator, t.threshold))
                .collect();
            annotations.insert("explanation".to_owned(), terms.join("; "));
        }
        Self { labels, annotations, starts_at: alert.time }
    }

    /// The postable alert, ending at `ends_at`.
    fn json(&self, ends_at: SystemTime) -> Value {
        json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": timestamp_text(self.starts_at),
            "endsAt": timestamp_text(ends_at.max(self.starts_at)),
        })
    }
}

/// A sensor and a rule.
type Key = (String, Arc<str>);

/// Sends to one Alertmanager.
pub(super) struct Alertmanager {
    client: reqwest::Client,
    url: reqwest::Url,
    resend: Duration,
    /// What fires now, by sensor and rule.
    firing: HashMap<Key, Posted>,
    /// When the firing alerts are sent again.
    next_resend: Option<Instant>,
}

impl Alertmanager {
    pub(super) fn new(base: &str, resend: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(&format!("{}/api/v2/alerts", base.trim_end_matches('/')))
            .map_err(|e| format!("bad `url`: {e}"))?;
        Ok(Self { client: http::client()?, url, resend, firing: HashMap::new(), next_resend: None })
    }

    fn live_until(&self, now: SystemTime) -> SystemTime {
        now + self.resend * ENDS_AFTER_INTERVALS
    }

    /// What to send Alertmanager for `batch` at `now`, and the changes to `firing` once it has taken them (kept
    /// apart until then: a retry starts over).
    fn plan(&self, batch: &[Arc<SinkAlert>], now: SystemTime) -> (Vec<Value>, HashMap<Key, Option<Posted>>) {
        let mut staged: HashMap<Key, Option<Posted>> = HashMap::new();
        let mut body = Vec::with_capacity(batch.len());
        for sink_alert in batch {
            let alert = &sink_alert.alert;
            let posted = Posted::of(sink_alert);
            if RESERVED_NAMES.contains(&&*alert.rule) {
                body.push(posted.json(alert.time + self.resend));
                continue;
            }
            let key = (alert.sensor_id.to_string(), Arc::clone(&alert.rule));
            let before = match staged.get(&key) {
                Some(staged) => staged.clone(),
                None => self.firing.get(&key).cloned(),
            };
            match alert.state {
                AlertState::Firing => {
                    if let Some(old) = before.filter(|old| old.labels != posted.labels) {
                        body.push(old.json(now));
                    }
                    body.push(posted.json(self.live_until(now)));
                    staged.insert(key, Some(posted));
                }
                AlertState::Resolved => {
                    // Resolved under the labels and start it fired with, so that Alertmanager matches it; told in
                    // the resolving alert's words.
                    let resolved = match before {
                        Some(old) => Posted { annotations: posted.annotations, ..old },
                        None => posted,
                    };
                    body.push(resolved.json(alert.time));
                    staged.insert(key, None);
                }
            }
        }
        (body, staged)
    }

    async fn post(&self, alerts: &[Value]) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(alerts).unwrap_or_default();
        let request = self.client.post(self.url.clone()).header(CONTENT_TYPE, "application/json").body(body);
        http::outcome(request.send().await)
    }
}

impl Deliver for Alertmanager {
    async fn deliver(&mut self, batch: &[Arc<SinkAlert>]) -> Result<(), DeliveryError> {
        let (body, staged) = self.plan(batch, Clock::System.now());
        self.post(&body).await?;
        for (key, posted) in staged {
            match posted {
                Some(posted) => self.firing.insert(key, posted),
                None => self.firing.remove(&key),
            };
        }
        if self.firing.is_empty() {
            self.next_resend = None;
        } else if self.next_resend.is_none() {
            self.next_resend = Some(timer_deadline(self.resend));
        }
        Ok(())
    }

    fn due_at(&self) -> Option<Instant> {
        self.next_resend
    }

    /// Sends every firing alert again, pushing its `endsAt` ahead.
    async fn due(&mut self) -> Result<(), DeliveryError> {
        let live_until = self.live_until(Clock::System.now());
        let alerts: Vec<Value> = self.firing.values().map(|posted| posted.json(live_until)).collect();
        for chunk in alerts.chunks(MAX_BATCH) {
            self.post(chunk).await?;
        }
        self.next_resend = (!self.firing.is_empty()).then(|| timer_deadline(self.resend));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alertstream_engine::Severity;

    use super::*;

    fn alert(state: AlertState, severity: Severity, team: &str, seconds: u64) -> Arc<SinkAlert> {
        let mut sink_alert = crate::sinks::test_alert(seconds);
        (sink_alert.alert.state, sink_alert.alert.severity) = (state, severity);
        sink_alert.labels = Arc::new(BTreeMap::from([("team".to_owned(), team.to_owned())]));
        Arc::new(sink_alert)
    }

    fn brief(posted: &Value) -> String {
        let labels = &posted["labels"];
        format!("{} {} {} ends {}", labels["severity"], labels["team"], posted["startsAt"], posted["endsAt"])
    }

    #[test]
    fn a_firing_alert_under_new_labels_resolves_the_old_one_and_resolved_uses_the_labels_it_fired_with() {
        let mut sink = Alertmanager::new("http://127.0.0.1:9", Duration::from_secs(60)).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let (body, staged) = sink.plan(&[alert(AlertState::Firing, Severity::Warning, "ovens", 10)], now);
        assert_eq!(
            body.iter().map(brief).collect::<Vec<_>>(),
            [r#""warning" "ovens" "1970-01-01T00:00:10Z" ends "1970-01-01T00:20:40Z""#]
        );
        for (key, posted) in staged {
            sink.firing.insert(key, posted.unwrap());
        }
        // A reload made the rule critical and moved it to another team; it fires again (notify = "every").
        let (body, _) = sink.plan(
            &[
                alert(AlertState::Firing, Severity::Critical, "utilities", 20),
                alert(AlertState::Resolved, Severity::Critical, "utilities", 30),
            ],
            now,
        );
        assert_eq!(
            body.iter().map(brief).collect::<Vec<_>>(),
            [
                // The old alert ends now; the new one fires; it resolves under the labels it fired with.
                r#""warning" "ovens" "1970-01-01T00:00:10Z" ends "1970-01-01T00:16:40Z""#,
                r#""critical" "utilities" "1970-01-01T00:00:20Z" ends "1970-01-01T00:20:40Z""#,
                r#""critical" "utilities" "1970-01-01T00:00:20Z" ends "1970-01-01T00:00:30Z""#,
            ]
        );
    }
}
