//! The rule engine: conditions parsed and compiled once, evaluated against every reading with per-sensor state.
//!
//! Pure and synchronous: no gRPC, no tokio, no clock. Time arrives as data on each [`Reading`], so `for = "30s"`
//! is exact in tests. The caller owns the [`StreamState`] and the output buffer, so the per-reading path takes no
//! lock and allocates nothing but the alerts it returns (and a sensor's state the first time it reports).

mod compile;
mod eval;
mod lexer;
mod parser;
mod reading;
mod state;
mod validate;

use std::{collections::HashMap, ops::Range, sync::Arc};

pub use reading::{Alert, AlertState, Reading, Severity};
pub use state::{Hold, Notify};
pub use validate::{MAX_METRIC_NAME_BYTES, MAX_SENSOR_ID_BYTES, ReadingError, validate};

use compile::{Condition, MetricTable};
use state::RuleState;

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

impl ConditionError {
    /// The 1-based line and column (counted in characters) of the start of the span within `condition`.
    pub fn line_col(&self, condition: &str) -> (usize, usize) {
        line_col(condition, self.span.start)
    }
}

/// The 1-based line and column, counted in characters, of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A rule as written, before its condition is compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// Unique within a rule set; alerts carry it.
    pub name: String,
    /// The condition's source text.
    pub condition: String,
    /// Carried by every alert of the rule.
    pub severity: Severity,
    /// Carried by every alert of the rule; the name when `None`.
    pub message: Option<String>,
    /// When the rule fires.
    pub notify: Notify,
    /// How long the condition must hold before the rule fires.
    pub hold: Option<Hold>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    name: Arc<str>,
    source: String,
    message: Arc<str>,
    severity: Severity,
    notify: Notify,
    hold: Option<Hold>,
    condition: Condition,
}

impl Rule {
    /// The rule's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The condition's source text.
    pub fn condition(&self) -> &str {
        &self.source
    }
    /// The message its alerts carry.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The severity its alerts carry.
    pub fn severity(&self) -> Severity {
        self.severity
    }
    /// When it fires.
    pub fn notify(&self) -> Notify {
        self.notify
    }
    /// How long its condition must hold before it fires.
    pub fn hold(&self) -> Option<Hold> {
        self.hold
    }
}

/// Why a list of [`RuleSpec`]s does not make a rule set. `rule` is the index of the spec at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    /// The list is empty.
    #[error("no rules: a rule set needs at least one rule")]
    Empty,
    /// A name is used by an earlier rule.
    #[error("duplicate rule name `{name}`")]
    DuplicateName {
        /// Index of the later rule.
        rule: usize,
        /// The name used twice.
        name: String,
    },
    /// A name is one of [`RESERVED_NAMES`].
    #[error("`{name}` is reserved for an event and cannot name a rule")]
    ReservedName {
        /// Index of the rule.
        rule: usize,
        /// The reserved name.
        name: String,
    },
    /// A name is empty.
    #[error("a rule name cannot be empty")]
    EmptyName {
        /// Index of the rule.
        rule: usize,
    },
    /// A condition does not parse or type-check.
    #[error("{error}")]
    Condition {
        /// Index of the rule.
        rule: usize,
        /// The error, with a span inside the condition.
        error: ConditionError,
    },
}

/// An immutable, compiled list of rules: shared by every stream as a snapshot.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    metrics: MetricTable,
}

impl RuleSet {
    /// Compiles `specs` in order.
    ///
    /// # Errors
    /// Every problem found in every spec, not only the first.
    pub fn new(specs: Vec<RuleSpec>) -> Result<Self, Vec<RuleSetError>> {
        if specs.is_empty() {
            return Err(vec![RuleSetError::Empty]);
        }
        let mut errors = Vec::new();
        let mut metrics = MetricTable::default();
        let mut rules = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            if spec.name.is_empty() {
                errors.push(RuleSetError::EmptyName { rule: index });
            } else if RESERVED_NAMES.contains(&spec.name.as_str()) {
                errors.push(RuleSetError::ReservedName { rule: index, name: spec.name.clone() });
            } else if rules.iter().any(|r: &Rule| *r.name == spec.name) {
                errors.push(RuleSetError::DuplicateName { rule: index, name: spec.name.clone() });
            }
            match compile::compile(&spec.condition, &mut metrics) {
                Ok(condition) => rules.push(Rule {
                    message: Arc::from(spec.message.as_deref().unwrap_or(&spec.name)),
                    name: Arc::from(spec.name),
                    source: spec.condition,
                    severity: spec.severity,
                    notify: spec.notify,
                    hold: spec.hold,
                    condition,
                }),
                Err(error) => errors.push(RuleSetError::Condition { rule: index, error }),
            }
        }
        if errors.is_empty() { Ok(Self { rules, metrics }) } else { Err(errors) }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Evaluates one reading of a stream: validates it, updates its sensor's state and appends the alerts it
    /// yields to `out`, in rule order.
    ///
    /// An invalid reading, or a new sensor beyond the stream's limit, changes no state and yields one event alert.
    pub fn evaluate(&self, stream: &mut StreamState, reading: &Reading, out: &mut Vec<Alert>) {
        if let Err(error) = validate(reading) {
            out.push(invalid_reading(reading, &error));
            return;
        }
        let StreamState { sensors, max_sensors, slot_values } = stream;
        self.fill_slots(reading, slot_values);
        if let Some(sensor) = sensors.get_mut(&reading.sensor_id) {
            self.apply(sensor, slot_values, reading, out);
            return;
        }
        if sensors.len() >= *max_sensors {
            let message = format!(
                "sensor limit reached: this stream already tracks {max_sensors} sensors; reading of `{}` not applied",
                reading.sensor_id
            );
            out.push(event(SENSOR_LIMIT, message, reading));
            return;
        }
        let sensor = sensors.entry(reading.sensor_id.clone()).or_default();
        self.apply(sensor, slot_values, reading, out);
    }

    /// Steps each rule of one sensor whose metrics the reading has.
    fn apply(&self, sensor: &mut SensorState, slot_values: &[Option<f64>], reading: &Reading, out: &mut Vec<Alert>) {
        sensor.rules.resize(self.rules.len(), RuleState::default());
        for (rule, state) in self.rules.iter().zip(sensor.rules.iter_mut()) {
            let Some(holds) = rule.condition.evaluate(slot_values) else {
                continue;
            };
            if let Some(alert_state) = state.step(holds, rule.hold, rule.notify, reading.time) {
                out.push(rule_alert(rule, alert_state, reading));
            }
        }
    }

    /// Evaluates one reading on its own, with no state: each rule's condition on this reading alone, `for` ignored.
    /// Appends one FIRING alert per rule whose condition holds, in rule order.
    ///
    /// # Errors
    /// The reading is invalid.
    pub fn evaluate_stateless(&self, reading: &Reading, out: &mut Vec<Alert>) -> Result<(), ReadingError> {
        validate(reading)?;
        let mut slot_values = Vec::new();
        self.fill_slots(reading, &mut slot_values);
        for rule in &self.rules {
            if rule.condition.evaluate(&slot_values) == Some(true) {
                out.push(rule_alert(rule, AlertState::Firing, reading));
            }
        }
        Ok(())
    }

    /// Looks up each metric the rule set reads once, into `slot_values`.
    fn fill_slots(&self, reading: &Reading, slot_values: &mut Vec<Option<f64>>) {
        slot_values.clear();
        slot_values.extend(self.metrics.names().iter().map(|name| reading.values.get(name).copied()));
    }
}

/// The per-sensor state of one stream. The stream owns it, so it needs no lock and is freed with the stream.
#[derive(Debug)]
pub struct StreamState {
    sensors: HashMap<String, SensorState>,
    /// A reading of a new sensor beyond this many is applied to no rule and yields a `sensor_limit` event.
    max_sensors: usize,
    /// Reused per reading: the reading's value for each metric slot.
    slot_values: Vec<Option<f64>>,
}

impl StreamState {
    /// An empty state that tracks at most `max_sensors` sensors.
    pub fn new(max_sensors: usize) -> Self {
        Self { sensors: HashMap::new(), max_sensors, slot_values: Vec::new() }
    }

    /// How many sensors the stream tracks.
    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }
}

/// One sensor's state: one [`RuleState`] per rule, in rule order.
#[derive(Debug, Default)]
struct SensorState {
    rules: Vec<RuleState>,
}

fn rule_alert(rule: &Rule, state: AlertState, reading: &Reading) -> Alert {
    Alert {
        sensor_id: reading.sensor_id.clone(),
        rule: Arc::clone(&rule.name),
        state,
        severity: rule.severity,
        message: Arc::clone(&rule.message),
        reading_seq: reading.seq,
        time: reading.time,
        values: reading.values.clone(),
    }
}

/// The in-band `invalid_reading` event for a reading that failed validation, or whose wire form could not become a
/// [`Reading`] at all (the caller found the error).
pub fn invalid_reading(reading: &Reading, error: &ReadingError) -> Alert {
    event(INVALID_READING, error.to_string(), reading)
}

fn event(name: &str, message: String, reading: &Reading) -> Alert {
    Alert {
        sensor_id: reading.sensor_id.clone(),
        rule: Arc::from(name),
        state: AlertState::Firing,
        severity: Severity::Warning,
        message: Arc::from(message),
        reading_seq: reading.seq,
        time: reading.time,
        values: reading.values.clone(),
    }
}

#[cfg(test)]
mod tests;
