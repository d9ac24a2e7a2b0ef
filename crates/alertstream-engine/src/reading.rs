//! The engine's own reading type, independent of the wire format.

use std::{collections::HashMap, time::SystemTime};

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
