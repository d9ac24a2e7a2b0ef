//! What the engine's benches share: the readings they feed it.

use std::time::{Duration, SystemTime};

use alertstream_engine::{Reading, Values};

/// Readings of `sensors` sensors in turn, temperature and pH wandering in range (about 1 in 100 crosses a default
/// threshold, so alerts are a small part of the work, as on a healthy line), one second apart.
pub(crate) fn readings(count: usize, sensors: usize) -> Vec<Reading> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let temperature = 9.9 + (x % 1000) as f64 / 100.0;
            let ph = 4.0 + ((x >> 20) % 150) as f64 / 100.0;
            Reading {
                sensor_id: format!("line-{}", i % sensors),
                values: Values::from_iter([("temperature".to_owned(), temperature), ("pH".to_owned(), ph)]),
                seq: i as u64,
                time: SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64),
            }
        })
        .collect()
}
