//! The engine's own reading type, independent of the wire format.

use std::{collections::HashMap, time::SystemTime};

/// A reading's metric values by name. foldhash rather than SipHash: the map is built and looked up on every
/// reading (once per metric a rule set reads); its per-map random seed still defeats precomputed collisions, and a
/// reading's size is bounded by the message size limit.
pub type Values = HashMap<String, f64, foldhash::fast::RandomState>;

/// One measurement of one sensor, as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The sensor that took the reading; state is kept per sensor.
    pub sensor_id: String,
    /// Metric name to value.
    pub values: Values,
    /// The client's sequence number, echoed in alerts; 0 when unset.
    pub seq: u64,
    /// The reading's time, or the server's receive time when the client sent none (the caller chooses).
    pub time: SystemTime,
}
