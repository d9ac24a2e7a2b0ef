//! The engine's own reading type, independent of the wire format.

use std::{collections::HashMap, time::SystemTime};

/// A reading's metric values by name. foldhash rather than SipHash: the map is built and looked up on every
/// reading (once per metric a rule set reads); its per-map random seed still defeats precomputed collisions, and a
/// reading's size is bounded by the message size limit.
///
/// The seed must stay per map. Alerts echo a reading's values in the map's order, so a client can read one map's
/// layout; under a seed shared by the process, that would tell it which names collide in the next map, and a
/// message of colliding names would cost quadratic time to decode. One shared seed made the engine 4 % faster
/// (docs/PERFORMANCE.md) and was reverted for this reason.
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
