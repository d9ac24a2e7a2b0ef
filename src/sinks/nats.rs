//! The NATS JetStream sink: each alert published, with acknowledgement (at least once), as its proto3 JSON on the
//! subject `<subject>.<rule>` (the rule made a safe subject token). Its `Nats-Msg-Id` is a hash of what makes the
//! alert itself (sensor, rule, state, reading seq and time; for a reading without a seq, also a number this process
//! gave the alert once), so that JetStream drops a resent duplicate within its duplicate window and never a
//! distinct alert. With `stream`, the stream over `<subject>.>` is made if missing. The `url` may list a cluster's
//! nodes, separated by commas: each connection goes to any of them that is up.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;

use super::{
    SinkAlert,
    runner::{Deliver, DeliveryError},
};
use crate::{clock::Clock, convert::timestamp_text, http::AlertJson, nats_servers::servers};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a publish waits for JetStream's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes to one JetStream.
pub(super) struct Nats {
    /// The servers to connect to, any one of them: the `url`'s comma-separated URLs.
    servers: Vec<String>,
    subject: String,
    stream: Option<String>,
    /// Connected (and the stream made) on the first delivery, and again after a failure.
    context: Option<jetstream::Context>,
    /// When this sink started, in ms since 1970: with an alert's serial, unique to this run.
    started: u128,
}

impl Nats {
    pub(super) fn new(url: &str, subject: &str, stream: Option<&str>) -> Self {
        let started = Clock::System.now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        let (subject, stream) = (subject.to_owned(), stream.map(str::to_owned));
        Self { servers: servers(url), subject, stream, context: None, started }
    }

    async fn context(&mut self) -> Result<&jetstream::Context, DeliveryError> {
        if self.context.is_none() {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(CONNECT_TIMEOUT)
                .connect(self.servers.as_slice())
                .await
                // The URL is not shown: it may carry credentials.
                .map_err(|e| DeliveryError::Retry(format!("cannot connect to NATS: {}", e.kind())))?;
            let context = jetstream::ContextBuilder::new().ack_timeout(ACK_TIMEOUT).build(client);
            if let Some(name) = &self.stream {
                let config = jetstream::stream::Config {
                    name: name.clone(),
                    subjects: vec![format!("{}.>", self.subject)],
                    ..Default::default()
                };
                context
                    .get_or_create_stream(config)
                    .await
                    .map_err(|e| DeliveryError::Retry(format!("cannot make the stream `{name}`: {e}")))?;
            }
            self.context = Some(context);
        }
        Ok(self.context.as_ref().unwrap_or_else(|| unreachable!("set above")))
    }
}

/// A rule's name as one subject token: what is not `[A-Za-z0-9_-]` becomes `_`.
fn token(rule: &str) -> String {
    rule.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// The alert's `Nats-Msg-Id`: the first 128 bits of a SHA-256 of what makes it, in hex; `started` tells this run's
/// serials from another's.
fn message_id(alert: &SinkAlert, started: u128) -> String {
    let a = &alert.alert;
    let mut what =
        format!("{}\0{}\0{}\0{}\0{}", a.sensor_id, a.rule, a.state.as_str(), a.reading_seq, timestamp_text(a.time));
    if a.reading_seq == 0 {
        // No seq to tell two alerts of one reading time apart: this process's number for the alert, fixed when it
        // was handed to the sinks, so that a retry reuses it.
        what.push_str(&format!("\0{started}\0{}", alert.serial));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, what.as_bytes());
    digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Deliver for Nats {
    async fn deliver(&mut self, batch: &[Arc<SinkAlert>]) -> Result<(), DeliveryError> {
        let (prefix, started) = (self.subject.clone(), self.started);
        let context = self.context().await?;
        let mut acks = Vec::with_capacity(batch.len());
        let mut failed = None;
        for alert in batch {
            let payload =
                serde_json::to_vec(&AlertJson { alert: &alert.alert, stale: alert.stale }).unwrap_or_default();
            let subject = format!("{prefix}.{}", token(&alert.alert.rule));
            let message = PublishMessage::build().payload(Bytes::from(payload)).message_id(message_id(alert, started));
            match context.send_publish(subject, message).await {
                Ok(ack) => acks.push(ack),
                Err(e) => {
                    failed = Some(format!("cannot publish: {e}"));
                    break;
                }
            }
        }
        // Every publish is in flight before the first acknowledgement is awaited.
        for ack in acks {
            if let Err(e) = ack.await {
                failed.get_or_insert_with(|| format!("no acknowledgement: {e}"));
            }
        }
        match failed {
            None => Ok(()),
            Some(why) => {
                // Connected afresh next time: the client may be gone for good.
                self.context = None;
                Err(DeliveryError::Retry(why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(seq: u64, serial: u64) -> SinkAlert {
        SinkAlert { serial, ..crate::sinks::test_alert(seq) }
    }

    #[test]
    fn a_message_id_is_the_alert_itself_so_a_resend_is_a_duplicate_and_two_alerts_are_not() {
        // A resend of one alert: the same id, in this run or after a restart (JetStream drops it).
        assert_eq!(message_id(&alert(7, 0), 1), message_id(&alert(7, 0), 2));
        assert_ne!(message_id(&alert(7, 0), 1), message_id(&alert(8, 0), 1));
        // Without a seq, the process's number for the alert tells two alerts apart, and this run's from another's.
        assert_ne!(message_id(&alert(0, 1), 1), message_id(&alert(0, 2), 1));
        assert_ne!(message_id(&alert(0, 1), 1), message_id(&alert(0, 1), 2));
        assert_eq!(message_id(&alert(0, 1), 1), message_id(&alert(0, 1), 1));
    }

    #[test]
    fn a_rule_name_becomes_one_subject_token() {
        assert_eq!(token("temp_too_low"), "temp_too_low");
        assert_eq!(token("line-1.oven hot*>"), "line-1_oven_hot__");
    }
}
