//! Alerts: what a rule firing or resolving for one sensor, or an event such as `invalid_reading`, yields; and the
//! builders every path of the engine makes them with.

use std::{sync::Arc, time::SystemTime};

use crate::{
    reading::{Reading, Values},
    rule::{Rule, RuleText},
    validate::ReadingError,
};

/// The event reported in-band for a reading that fails validation; it never resolves.
pub const INVALID_READING: &str = "invalid_reading";
/// The event reported in-band for a new sensor beyond the stream's sensor limit; it never resolves.
pub const SENSOR_LIMIT: &str = "sensor_limit";
/// The event reported in-band for a reading older than its sensor's latest by more than the allowed lateness.
pub const LATE_READING: &str = "late_reading";
/// The event reported in-band for a reading over its stream's rate limit (`--max-readings-per-second`).
pub const RATE_LIMITED: &str = "rate_limited";
/// The event a resuming stream (`alertstream-resume: 1`) gets when its sensor's state is durable up to a reading:
/// `reading_seq` is that reading's `seq`. Never an alert: not counted as one, and never sent to sinks.
pub const CHECKPOINT: &str = "checkpoint";
/// Names that are events, not rules: a rules file may not use them.
pub const RESERVED_NAMES: [&str; 5] = [INVALID_READING, SENSOR_LIMIT, LATE_READING, RATE_LIMITED, CHECKPOINT];

/// How serious an alert is. Its text form (`info`, `warning`, `critical`) is in `text.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    /// For information only.
    Info,
    /// Needs attention; the default.
    #[default]
    Warning,
    /// Needs action now.
    Critical,
}

/// Whether an alert starts or ends a firing. Its text form (`firing`, `resolved`) is in `text.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// The rule's condition holds (or an event happened).
    Firing,
    /// The rule's condition stopped holding after it fired.
    Resolved,
}

/// A rule that fired or resolved for one sensor, or an event such as `invalid_reading`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The sensor of the reading that caused the alert, as sent.
    pub sensor_id: Box<str>,
    /// The rule's name, or the event's (`invalid_reading`, `sensor_limit`).
    pub rule: Arc<str>,
    /// Firing or resolved.
    pub state: AlertState,
    /// The rule's severity.
    pub severity: Severity,
    /// The rule's message, or for an event what went wrong.
    pub message: Arc<str>,
    /// The `seq` of the reading that caused the alert.
    pub reading_seq: u64,
    /// The time of the reading that caused the alert.
    pub time: SystemTime,
    /// The values of the reading that caused the alert.
    pub values: Values,
    /// Why a rule's alert fired or resolved: one term per comparison of the condition (for a RESOLVED alert of a rule
    /// with `resolve`, of that), at the reading; empty for events, absence and alerts no reading caused.
    pub explanation: Box<[Term]>,
}

/// One comparison of a condition at a reading: `zscore(value, 1000) > 4` with a score of 4.2 is
/// `zscore(value, 1000)`, 4.2, `>`, 4.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The left side of the comparison, as written.
    pub expression: Arc<str>,
    /// Its value at the reading.
    pub value: f64,
    /// `<`, `<=`, `>`, `>=`, `==` or `!=`.
    pub operator: &'static str,
    /// The right side's value at the reading.
    pub threshold: f64,
}

impl Alert {
    /// The in-band `invalid_reading` event for a reading that failed validation, or whose wire form could not
    /// become a [`Reading`] at all (the caller found the error).
    pub fn invalid_reading(reading: &Reading, error: &ReadingError) -> Self {
        Self::event(INVALID_READING, error.to_string(), reading)
    }

    /// The in-band `rate_limited` event for a reading that was not applied because its stream sent more than
    /// `per_second` readings a second.
    pub fn rate_limited(reading: &Reading, per_second: u32) -> Self {
        let message = format!("reading not applied: this stream may send at most {per_second} readings a second");
        Self::event(RATE_LIMITED, message, reading)
    }

    /// The `checkpoint` event: sensor `sensor_id`'s state is durable up to its reading `seq` (INFO, at `now`).
    pub fn checkpoint(sensor_id: &str, seq: u64, now: SystemTime) -> Self {
        Self {
            sensor_id: sensor_id.into(),
            rule: Arc::from(CHECKPOINT),
            state: AlertState::Firing,
            severity: Severity::Info,
            message: Arc::from(format!("state durable up to seq {seq}")),
            reading_seq: seq,
            time: now,
            values: Values::default(),
            explanation: Box::default(),
        }
    }

    /// An event (FIRING, WARNING, never resolved) about `reading`.
    pub(crate) fn event(name: &str, message: String, reading: &Reading) -> Self {
        Self {
            sensor_id: reading.sensor_id.as_str().into(),
            rule: Arc::from(name),
            state: AlertState::Firing,
            severity: Severity::Warning,
            message: Arc::from(message),
            reading_seq: reading.seq,
            time: reading.time,
            values: reading.values.clone(),
            explanation: Box::default(),
        }
    }

    /// An alert of `rule` (named by `text`) about a reading of sensor `sensor_id` with `values`, its message
    /// rendered from them. Its own `sensor_id` and `values` are left empty for the caller to move (or copy) the
    /// reading's into.
    pub(crate) fn of_rule(
        rule: &Rule,
        text: &RuleText,
        state: AlertState,
        sensor_id: &str,
        seq: u64,
        time: SystemTime,
        values: &Values,
    ) -> Self {
        Self {
            message: rule.render(text, state, sensor_id, values),
            sensor_id: Box::default(),
            rule: Arc::clone(&text.name),
            state,
            severity: rule.spec().severity,
            reading_seq: seq,
            time,
            values: Values::default(),
            explanation: Box::default(),
        }
    }

    /// An alert no reading caused (absence, reload): the sensor's last reading's seq and values, at server time
    /// `now`.
    pub(crate) fn of_last_reading(
        rule: &Rule,
        state: AlertState,
        sensor_id: &str,
        last_seq: u64,
        last_values: &Values,
        now: SystemTime,
    ) -> Self {
        Self {
            sensor_id: sensor_id.into(),
            values: last_values.clone(),
            ..Self::of_rule(rule, &rule.text(), state, sensor_id, last_seq, now, last_values)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alert is moved several times on its way out (into the stream's buffer, out of it, through tonic's stream
    /// adapters into the encoder). Up to 128 bytes the compiler copies it inline with vector moves; beyond, each
    /// move is a call to `memcpy`, which took about 6 % of the server's time per reading (docs/PERFORMANCE.md).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_alert_is_small_enough_to_move_inline() {
        assert!(std::mem::size_of::<Alert>() <= 128, "{} bytes", std::mem::size_of::<Alert>());
    }
}
