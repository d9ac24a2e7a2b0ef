//! The engine's own reading type, independent of the wire format.

use std::{collections::HashMap, hash::BuildHasher, time::SystemTime};

use foldhash::{SharedSeed, fast::FoldHasher};

/// A reading's metric values by name. foldhash rather than SipHash: the map is built and looked up on every
/// reading (once per metric a rule set reads). Its seed is random per process (see [`ValuesHasher`]).
pub type Values = HashMap<String, f64, ValuesHasher>;

/// The hasher of [`Values`]: foldhash on one random seed for the whole process, where foldhash's own `RandomState`
/// draws a new one for every map.
///
/// With one seed, every reading of the same metrics lays them out alike, so the engine's pass over a reading's
/// metrics takes the same branches reading after reading, and the processor predicts them. With a seed per map
/// the order is a coin toss per reading, and matching a reading's names to the rule set's mispredicts about one
/// branch per reading: 4 % of the engine's time (docs/PERFORMANCE.md).
///
/// The price is that one map's layout tells of the next: alerts echo a reading's values in the map's order, so a
/// client can learn which names collide, and a map of colliding names costs quadratic time to build. What bounds
/// it is [`MAX_METRICS`](crate::MAX_METRICS): the gRPC decoder hashes no entry past the limit (repeats counted),
/// and every other map built from input grows through [`insert_metric`](crate::insert_metric), which stops one
/// past it, so a flood costs at most a small factor of an honest reading of that many metrics. The one place that
/// inserts one map's entries into another, in its order, sizes the table first, so the shared layout cannot crowd
/// them.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValuesHasher;

impl BuildHasher for ValuesHasher {
    type Hasher = FoldHasher<'static>;

    /// foldhash's hasher on its process-wide random seed, with one fixed per-hasher seed (where foldhash's
    /// `RandomState` draws one per map). Zero-sized, where `RandomState` is 8 bytes: an [`Alert`](crate::Alert)
    /// fits in 128 bytes because of it.
    #[inline]
    fn build_hasher(&self) -> Self::Hasher {
        FoldHasher::with_seed(0x9e37_79b9_7f4a_7c15, SharedSeed::global_random())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_of_the_same_metrics_lay_them_out_alike() {
        // One seed per process: maps of the same names, inserted in the same order (as one client sends them),
        // iterate them in one order. With a seed per map, 64 maps of 8 names would all agree by chance only.
        let names: Vec<String> = (0..8).map(|i| format!("metric_{i}")).collect();
        let values = |value: f64| -> Values { names.iter().map(|n| (n.clone(), value)).collect() };
        let order = |values: &Values| values.keys().cloned().collect::<Vec<_>>();
        let first = order(&values(0.0));
        for value in 1..64 {
            assert_eq!(order(&values(f64::from(value))), first);
        }
    }
}
