//! The engine's own reading and alert types, independent of the wire format.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

/// One measurement of one sensor, as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The sensor that took the reading; state is kept per sensor.
    pub sensor_id: String,
    /// Metric name to value.
    pub values: HashMap<String, f64>,
    /// The client's sequence number, echoed in alerts; 0 when unset.
    pub seq: u64,
    /// The reading's time, or the server's receive time when the client sent none (the caller chooses).
    pub time: SystemTime,
}

/// How serious an alert is.
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

impl Severity {
    /// The name used in rules files.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whether an alert starts or ends a firing.
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
    pub sensor_id: String,
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
    pub values: HashMap<String, f64>,
}
