//! The rule engine: conditions parsed and compiled once, evaluated against every reading with per-sensor state.
//!
//! Pure and synchronous: no gRPC, no tokio, no clock. Time arrives as data (each [`Reading`]'s time, and the
//! server's `now` for absence), so `for = "30s"` and `absent_for` are exact in tests. The caller owns the
//! [`StreamState`] and the output buffer, so the per-reading path takes no lock and allocates nothing but the alerts
//! it returns (and a sensor's state the first time it reports).

mod compile;
mod eval;
mod glob;
mod lexer;
mod order_stats;
mod parser;
mod reading;
mod rule;
mod state;
mod stream;
mod template;
mod validate;
mod window;

use std::ops::Range;

pub use reading::{Alert, AlertState, Reading, Severity};
pub use rule::{Rule, RuleField, RuleSet, RuleSetError, RuleSpec};
pub use state::{Hold, Notify, Timing};
pub use stream::{StreamState, invalid_reading};
pub use validate::{MAX_METRIC_NAME_BYTES, MAX_SENSOR_ID_BYTES, ReadingError, validate};
pub use window::{ANOMALY_WARM_UP, MAX_WINDOW_READINGS};

/// The event reported in-band for a reading that fails validation; it never resolves.
pub const INVALID_READING: &str = "invalid_reading";
/// The event reported in-band for a new sensor beyond the stream's sensor limit; it never resolves.
pub const SENSOR_LIMIT: &str = "sensor_limit";
/// The event reported in-band for a reading older than its sensor's latest by more than the allowed lateness.
pub const LATE_READING: &str = "late_reading";
/// Names that are events, not rules: a rules file may not use them.
pub const RESERVED_NAMES: [&str; 3] = [INVALID_READING, SENSOR_LIMIT, LATE_READING];

/// A problem in a condition, with the byte range of the condition's text it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// The offending text, as a byte range of the condition.
    pub span: Range<usize>,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

/// The 1-based line and column, counted in characters, of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests;
