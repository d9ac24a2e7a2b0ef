//! Checks a reading before it reaches any rule, and names the field that is wrong.

use std::time::{Duration, SystemTime};

use crate::{
    reading::{Reading, Values},
    text::format_duration,
};

/// The most bytes (UTF-8) a `sensor_id` may have; exactly this many is valid.
pub const MAX_SENSOR_ID_BYTES: usize = 256;
/// The most bytes (UTF-8) a metric name may have; exactly this many is valid.
pub const MAX_METRIC_NAME_BYTES: usize = 128;
/// The most metrics a reading may have; exactly this many is valid. It bounds what one reading costs to decode,
/// hash, evaluate and echo in its alerts, whatever the message size limit allows.
pub const MAX_METRICS: usize = 1_024;

/// Adds the metric `name` to `values` while a reading is built from input whose names are already distinct (a
/// decoded map, a JSON object, a CSV header), unless `values` already holds more than [`MAX_METRICS`] names. Such
/// a reading is invalid whatever else it holds, so its map stops growing one past the limit, and the input's size
/// does not decide how many names are hashed into it (a flood of colliding names costs quadratic time to insert).
/// Input that can repeat a name, as the gRPC wire form can, counts its entries instead (`alertstream-wire`).
#[inline]
pub fn insert_metric(values: &mut Values, name: String, value: f64) {
    if values.len() <= MAX_METRICS {
        values.insert(name, value);
    }
}

/// A reading's values from `pairs` whose names are already distinct (a decoded map, a test's table), each through
/// [`insert_metric`].
pub fn values_from(pairs: impl IntoIterator<Item = (String, f64)>) -> Values {
    let mut values = Values::default();
    for (name, value) in pairs {
        insert_metric(&mut values, name, value);
    }
    values
}

/// Why a reading was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reading: {field} {reason}")]
pub struct ReadingError {
    /// The field at fault, as the wire names it (`sensor_id`, `values`, `values["pH"]`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Checks every field of `reading`.
///
/// # Errors
/// The first problem found, in the order `sensor_id`, then `values`; among bad metrics, the one whose name sorts
/// first, so the answer does not depend on hash order.
pub fn validate(reading: &Reading) -> Result<(), ReadingError> {
    let id_len = reading.sensor_id.len();
    if id_len == 0 {
        return Err(error("sensor_id", "is empty".to_owned()));
    }
    if id_len > MAX_SENSOR_ID_BYTES {
        return Err(error("sensor_id", format!("is {id_len} bytes, over the limit of {MAX_SENSOR_ID_BYTES}")));
    }
    if reading.values.is_empty() {
        return Err(error("values", "is empty: a reading needs at least one metric".to_owned()));
    }
    if reading.values.len() > MAX_METRICS {
        return Err(too_many_metrics());
    }
    // Nearly every reading is valid: one tight pass says so; the slow pass below finds the error to name.
    if reading.values.iter().all(|(name, &value)| metric_is_valid(name, value)) {
        return Ok(());
    }
    let worst = reading
        .values
        .iter()
        .filter_map(|(name, value)| metric_problem(name, *value).map(|problem| (name, problem)))
        .min_by(|a, b| a.0.cmp(b.0));
    match worst {
        Some((_, problem)) => Err(problem),
        None => Ok(()),
    }
}

/// The error of a reading with more than [`MAX_METRICS`] metrics: for a caller that counted them on the wire (where
/// a repeated name is another entry) before they reached a map.
pub fn too_many_metrics() -> ReadingError {
    error("values", format!("has more than {MAX_METRICS} metrics, the limit"))
}

/// Whether the reading's `sensor_id` is valid and it has a metric: the checks of [`validate`] before its metrics'.
#[inline]
pub(crate) fn id_and_count_are_valid(reading: &Reading) -> bool {
    (1..=MAX_SENSOR_ID_BYTES).contains(&reading.sensor_id.len()) && (1..=MAX_METRICS).contains(&reading.values.len())
}

/// Whether one metric is valid: the check of the common case, which [`metric_problem`] explains when it fails.
#[inline]
pub(crate) fn metric_is_valid(name: &str, value: f64) -> bool {
    !name.is_empty() && name.len() <= MAX_METRIC_NAME_BYTES && value.is_finite()
}

fn metric_problem(name: &str, value: f64) -> Option<ReadingError> {
    if name.is_empty() {
        return Some(error("values", "has an empty metric name".to_owned()));
    }
    if name.len() > MAX_METRIC_NAME_BYTES {
        let shown: String = name.chars().take(16).collect();
        return Some(error(
            "values",
            format!(
                "has a metric name of {} bytes (\"{shown}…\"), over the limit of {MAX_METRIC_NAME_BYTES}",
                name.len()
            ),
        ));
    }
    if value.is_nan() {
        return Some(error(&format!("values[{name:?}]"), "is NaN".to_owned()));
    }
    if value.is_infinite() {
        return Some(error(&format!("values[{name:?}]"), "is infinite".to_owned()));
    }
    None
}

/// Checks that a reading stamped `time` is no further than `max_future` ahead of the server's clock at `now`: a
/// reading from the future would make every correctly timed reading of its sensor late, for as long as it is ahead.
///
/// # Errors
/// The reading is too far ahead; the error names `time`.
pub fn validate_time(time: SystemTime, now: SystemTime, max_future: Duration) -> Result<(), ReadingError> {
    match time.duration_since(now) {
        Ok(ahead) if ahead > max_future => Err(error(
            "time",
            format!(
                "is {} ahead of the server's clock, over the allowed {}",
                format_duration(ahead),
                format_duration(max_future)
            ),
        )),
        _ => Ok(()),
    }
}

fn error(field: &str, reason: String) -> ReadingError {
    ReadingError { field: field.to_owned(), reason }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn reading(sensor_id: &str, values: &[(&str, f64)]) -> Reading {
        Reading {
            sensor_id: sensor_id.to_owned(),
            values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            seq: 0,
            time: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let id = "s".repeat(MAX_SENSOR_ID_BYTES);
        let metric = "m".repeat(MAX_METRIC_NAME_BYTES);
        assert_eq!(validate(&reading(&id, &[(&metric, 1.0)])), Ok(()));
        // A multi-byte character counts by its UTF-8 bytes: 128 × "é" is 256 bytes.
        assert_eq!(validate(&reading(&"é".repeat(128), &[("t", 1.0)])), Ok(()));
    }

    #[test]
    fn each_problem_names_its_field() {
        let long_id = "s".repeat(MAX_SENSOR_ID_BYTES + 1);
        let long_metric = "m".repeat(MAX_METRIC_NAME_BYTES + 1);
        for (reading, expected) in [
            (reading("", &[("t", 1.0)]), "invalid reading: sensor_id is empty"),
            (reading(&long_id, &[("t", 1.0)]), "invalid reading: sensor_id is 257 bytes, over the limit of 256"),
            (
                reading("é".repeat(129).as_str(), &[("t", 1.0)]),
                "invalid reading: sensor_id is 258 bytes, over the limit of 256",
            ),
            (reading("s", &[]), "invalid reading: values is empty: a reading needs at least one metric"),
            (reading("s", &[("", 1.0)]), "invalid reading: values has an empty metric name"),
            (
                reading("s", &[(&long_metric, 1.0)]),
                "invalid reading: values has a metric name of 129 bytes (\"mmmmmmmmmmmmmmmm…\"), over the limit of 128",
            ),
            (reading("s", &[("pH", f64::NAN)]), "invalid reading: values[\"pH\"] is NaN"),
            (reading("s", &[("t", f64::NEG_INFINITY)]), "invalid reading: values[\"t\"] is infinite"),
            (
                reading("s", &[("z", f64::NAN), ("a", f64::INFINITY), ("m", 1.0)]),
                "invalid reading: values[\"a\"] is infinite",
            ),
        ] {
            assert_eq!(validate(&reading).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn a_reading_may_have_up_to_the_limit_of_metrics_and_a_map_stops_one_past_it() {
        let mut values = Values::default();
        for i in 0..MAX_METRICS {
            insert_metric(&mut values, format!("m{i}"), 1.0);
        }
        let at = |values: &Values| Reading {
            sensor_id: "s".into(),
            values: values.clone(),
            seq: 0,
            time: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(validate(&at(&values)), Ok(()), "exactly the limit is valid");
        assert!(id_and_count_are_valid(&at(&values)));
        for i in MAX_METRICS..MAX_METRICS * 3 {
            insert_metric(&mut values, format!("m{i}"), 1.0);
        }
        assert_eq!(values.len(), MAX_METRICS + 1, "the map stops growing one past the limit");
        assert!(!id_and_count_are_valid(&at(&values)));
        assert_eq!(
            validate(&at(&values)).unwrap_err().to_string(),
            "invalid reading: values has more than 1024 metrics, the limit"
        );
    }

    #[test]
    fn a_reading_from_too_far_ahead_names_its_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let minute = Duration::from_secs(60);
        assert_eq!(validate_time(now + minute, now, minute), Ok(()));
        assert_eq!(validate_time(now - Duration::from_secs(3600), now, minute), Ok(()));
        let error = validate_time(now + Duration::from_secs(3600), now, minute).unwrap_err();
        assert_eq!(error.to_string(), "invalid reading: time is 1h ahead of the server's clock, over the allowed 1m");
        assert_eq!(error.field, "time");
    }
}
