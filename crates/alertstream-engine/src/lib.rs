//! alertstream's rule engine: conditions parsed and compiled once, evaluated against every reading with
//! per-sensor state.
//!
//! Pure and synchronous: no gRPC, no async runtime, no clock; this crate's dependencies cannot reach them. Time
//! arrives as data (each [`Reading`]'s time, and the caller's `now` for absence and reload), so `for = "30s"` and
//! `absent_for` are exact in tests. The caller owns the [`StreamState`] and the output buffer, so the per-reading
//! path takes no lock and allocates nothing but the alerts it returns (and a sensor's state the first time it
//! reports).
//!
//! A reading's way through: [`RuleSet::evaluate`] (in `rule_set.rs`) validates it, finds its sensor in the
//! [`StreamState`], and steps each rule's state machine (`state.rs`) on its compiled condition (`compile.rs`,
//! `eval.rs`, `window/`). Between readings the caller may fire due absence rules ([`RuleSet::check_absence`],
//! `absence.rs`) or move the stream to a reloaded rule set ([`RuleSet::adopt`], `adopt.rs`).
//! [`RuleSet::evaluate_stateless`] (`evaluation.rs`) answers one reading on its own.

#![warn(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod absence;
mod adopt;
mod alert;
mod compile;
mod condition_error;
mod eval;
mod evaluation;
mod glob;
mod lexer;
mod parser;
mod reading;
mod rule;
mod rule_set;
mod sensor_id;
mod snapshot;
mod state;
mod stream_state;
mod template;
mod text;
mod validate;
mod window;

pub use alert::{
    Alert, AlertState, CHECKPOINT, INVALID_READING, LATE_READING, RATE_LIMITED, RESERVED_NAMES, SENSOR_LIMIT, Severity,
    Term,
};
pub use condition_error::ConditionError;
pub use evaluation::{ALL_GOOD, Evaluation, Skipped};
pub use reading::{Reading, Values, ValuesHasher};
pub use rule::{DEFAULT_RESOLVE_PREFIX, DurationsAsWritten, RESERVED_LABELS, Rule, RuleField, RuleSpec};
pub use rule_set::{RuleSet, RuleSetError};
pub use snapshot::{Restored, SNAPSHOT_VERSION, SnapshotError};
pub use state::{Hold, Notify, Timing};
pub use stream_state::StreamState;
pub use text::{TextError, format_duration, parse_duration};
pub use validate::{
    MAX_METRIC_NAME_BYTES, MAX_METRICS, MAX_SENSOR_ID_BYTES, ReadingError, insert_metric, too_many_metrics, validate,
    validate_time, values_from,
};
pub use window::{
    ANOMALY_WARM_UP, LIKELIHOOD_HISTORY, LIKELIHOOD_WARM_UP, MAX_WINDOW_READINGS, NOVELTY_WARM_UP, ROBUST_SCALE_FLOOR,
    ROBUST_SCALE_MIN,
};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
