//! The rule set: the immutable, compiled list of rules every stream shares as a snapshot, and the per-reading path
//! that applies it to one stream's state: validate, find the sensor, step each rule, collect the alerts.

use std::{sync::Arc, time::SystemTime};

use crate::{
    alert::{Alert, AlertState, LATE_READING, RESERVED_NAMES, SENSOR_LIMIT, Term},
    compile::{Condition, MetricTable},
    condition_error::ConditionError,
    eval::{Inputs, TermValue},
    reading::{Reading, Values},
    rule::{Rule, RuleField, RuleSpec, Watch, compile_rule},
    stream_state::StreamState,
    text::format_duration,
    validate::{ReadingError, id_and_count_are_valid, metric_is_valid, validate},
};

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
    /// A rule has neither a condition nor `absent_for`.
    #[error("a rule needs a `condition` (or `absent_for`)")]
    MissingCondition {
        /// Index of the rule.
        rule: usize,
    },
    /// An `absent_for` rule has a key that only conditions take.
    #[error("an `absent_for` rule fires on silence and takes no `{key}`")]
    AbsentWith {
        /// Index of the rule.
        rule: usize,
        /// The key it may not have.
        key: &'static str,
    },
    /// A label's name is malformed or reserved ([`RESERVED_LABELS`](crate::RESERVED_LABELS)).
    #[error("bad label name `{name}`: {reason}")]
    Label {
        /// Index of the rule.
        rule: usize,
        /// The label's name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A condition, resolve condition or message does not compile; the span is inside that field's text.
    #[error("{error}")]
    Field {
        /// Index of the rule.
        rule: usize,
        /// Which field.
        field: RuleField,
        /// The error, with a span inside the field.
        error: ConditionError,
    },
}

/// The terms of `condition` whose two sides had a value (`values`), as an explanation naming each by its left side
/// in `expressions` (the caller's own copies, in the condition's order).
pub(crate) fn explain(condition: &Condition, values: &[TermValue], expressions: &[Arc<str>]) -> Box<[Term]> {
    // Sized for every term up front: a condition with a value has a value for every term (a missing one makes it
    // `None`), so the boxed slice takes the allocation as it is, where collecting would grow it and then shrink it.
    let mut terms = Vec::with_capacity(condition.terms.len());
    let explained = condition.terms.iter().zip(values).zip(expressions);
    terms.extend(explained.filter_map(|((spec, value), expression)| {
        value.map(|(value, threshold)| Term {
            expression: Arc::clone(expression),
            value,
            operator: spec.operator,
            threshold,
        })
    }));
    terms.into_boxed_slice()
}

/// `id` as a boxed string: its own allocation where that is exactly as long (as the `Stream` decoder makes every
/// id, and prost any of 8 bytes or more), else a copy. `String::into_boxed_str` would shrink a longer allocation
/// with `realloc`, which cost 5 % of the server's time per reading with short ids.
fn boxed(id: String) -> Box<str> {
    if id.capacity() == id.len() { id.into_boxed_str() } else { id.as_str().into() }
}

/// Makes `kept` equal to `values`, in place: a sensor that reports the same metrics each time (nearly every one)
/// changes only the numbers, where a fresh copy would allocate the map and every name again.
fn overwrite(kept: &mut Values, values: &Values) {
    kept.retain(|name, _| values.contains_key(name));
    // Both maps share one hash seed (`ValuesHasher`): inserting one's entries in its order into a smaller table
    // of the other would crowd them into one region, so the table is first made as large.
    kept.reserve(values.len().saturating_sub(kept.len()));
    for (name, &value) in values {
        match kept.get_mut(name) {
            Some(slot) => *slot = value,
            None => {
                kept.insert(name.clone(), value);
            }
        }
    }
}

/// An immutable, compiled list of rules: shared by every stream as a snapshot.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    /// The metric names any rule reads, each a slot: a reading's values are looked up once per reading.
    pub(crate) metrics: MetricTable,
    /// Whether any rule watches for absence (decided once: the per-reading path asks).
    watches_absence: bool,
    /// The most comparisons one rule's condition and resolve condition have together: a stream's scratch for their
    /// values is this long.
    pub(crate) max_terms: usize,
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
        let mut rules: Vec<Rule> = Vec::with_capacity(specs.len());
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        for (index, spec) in specs.into_iter().enumerate() {
            if spec.name.is_empty() {
                errors.push(RuleSetError::EmptyName { rule: index });
            } else if RESERVED_NAMES.contains(&spec.name.as_str()) {
                errors.push(RuleSetError::ReservedName { rule: index, name: spec.name.clone() });
            } else if names[..index].contains(&spec.name) {
                errors.push(RuleSetError::DuplicateName { rule: index, name: spec.name.clone() });
            }
            match compile_rule(index, spec, &mut metrics) {
                Ok(rule) => rules.push(rule),
                Err(mut rule_errors) => errors.append(&mut rule_errors),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let watches_absence = rules.iter().any(|r| matches!(r.watch, Watch::Absence(_)));
        let max_terms = rules
            .iter()
            .map(|r| match &r.watch {
                Watch::Condition { condition, resolve } => {
                    condition.terms.len() + resolve.as_ref().map_or(0, |r| r.terms.len())
                }
                Watch::Absence(_) => 0,
            })
            .max()
            .unwrap_or(0);
        Ok(Self { rules, metrics, watches_absence, max_terms })
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether any rule watches for absence (the stream loop then needs a timer).
    pub fn watches_absence(&self) -> bool {
        self.watches_absence
    }

    /// Evaluates one reading of a stream, received at server time `now`: validates it, updates its sensor's state
    /// and appends the alerts it yields to `out`, in rule order.
    ///
    /// Only absence uses `now` (silence is measured from it): a caller whose rule set watches no absence
    /// ([`RuleSet::watches_absence`]) may pass any time, such as the reading's own, and spare a clock read.
    ///
    /// An invalid reading, a new sensor beyond the stream's limit, or a reading too far behind its sensor's latest
    /// changes no state and yields one event alert.
    pub fn evaluate(&self, stream: &mut StreamState, reading: Reading, now: SystemTime, out: &mut Vec<Alert>) {
        if let Err(error) = self.read_values(&reading, &mut stream.slot_values) {
            out.push(Alert::invalid_reading(&reading, &error));
            return;
        }
        let Some(index) = stream.sensor_index(self, &reading.sensor_id, now) else {
            let message = format!(
                "sensor limit reached: this stream already tracks {} sensors; reading of `{}` not applied",
                stream.max_sensors, reading.sensor_id
            );
            out.push(Alert::event(SENSOR_LIMIT, message, &reading));
            return;
        };
        let n = stream.rules_per_sensor;
        debug_assert_eq!(n, self.rules.len(), "a stream moves to another rule set only through `adopt`");
        if stream.term_values.len() < self.max_terms {
            stream.term_values.resize(self.max_terms, None);
        }
        let term_values = &mut stream.term_values;
        let sensor = &mut stream.sensors[index];
        let states = &mut stream.rule_states[index * n..(index + 1) * n];
        let latest = match sensor.latest {
            // Most readings come in order: a comparison, and no arithmetic on times, tells.
            Some(latest)
                if reading.time < latest
                    && latest.duration_since(reading.time).is_ok_and(|behind| behind > stream.lateness) =>
            {
                let message = format!(
                    "late reading: {} behind sensor `{}`'s latest, over the allowed lateness of {}; not applied",
                    format_duration(latest.duration_since(reading.time).unwrap_or_default()),
                    reading.sensor_id,
                    format_duration(stream.lateness)
                );
                out.push(Alert::event(LATE_READING, message, &reading));
                return;
            }
            Some(latest) => latest.max(reading.time),
            None => reading.time,
        };
        sensor.latest = Some(latest);
        let inputs = Inputs { values: &stream.slot_values, time: reading.time, latest };
        let first = out.len();
        for ((rule, sensor_rule), text) in self.rules.iter().zip(states.iter_mut()).zip(&stream.texts) {
            if !sensor_rule.applies {
                continue;
            }
            let alert_state = match &rule.watch {
                // A reading is the end of any silence.
                Watch::Absence(_) if sensor_rule.state.is_firing() => {
                    sensor_rule.state.set_firing(false);
                    Some(AlertState::Resolved)
                }
                Watch::Absence(_) => None,
                Watch::Condition { condition, resolve } => {
                    // A rule with windows is skipped whole when a metric is missing, so that no window learns from
                    // a reading the rule was not applied to; without windows, evaluation itself says `None`.
                    if (condition.stateful || resolve.as_ref().is_some_and(|r| r.stateful))
                        && (!condition.has_inputs(inputs.values)
                            || resolve.as_ref().is_some_and(|r| !r.has_inputs(inputs.values)))
                    {
                        continue;
                    }
                    let (condition_terms, resolve_terms) = term_values.split_at_mut(condition.terms.len());
                    let fires = condition.evaluate(&inputs, &mut sensor_rule.windows, condition_terms);
                    let clears = resolve.as_ref().map(|r| r.evaluate(&inputs, &mut sensor_rule.windows, resolve_terms));
                    let (fires, clears) = match (fires, clears) {
                        (Some(fires), None) => (fires, !fires),
                        (Some(fires), Some(Some(clears))) => (fires, clears),
                        // A window function without a value yet: the rule's state stays as it was.
                        _ => continue,
                    };
                    sensor_rule.state.step(fires, clears, &rule.spec().timing, reading.time)
                }
            };
            if let Some(state) = alert_state {
                // The sensor id and values are filled in below, moved rather than copied where they can be.
                let mut alert =
                    Alert::of_rule(rule, text, state, &reading.sensor_id, reading.seq, reading.time, &reading.values);
                if let Watch::Condition { condition, resolve } = &rule.watch {
                    // Why: the condition's comparisons, or for a RESOLVED of a rule with `resolve`, that one's; the
                    // scratch and the stream's own expressions hold the condition's terms, then the resolve's.
                    let (explained, from) = match (state, resolve) {
                        (AlertState::Resolved, Some(resolve)) => (resolve, condition.terms.len()),
                        _ => (condition, 0),
                    };
                    alert.explanation = explain(explained, &term_values[from..], &text.terms[from..]);
                }
                out.push(alert);
            }
        }
        sensor.last_seq = reading.seq;
        let alerts = &mut out[first..];
        if let Some((last, rest)) = alerts.split_last_mut() {
            for alert in rest {
                alert.sensor_id = reading.sensor_id.as_str().into();
            }
            last.sensor_id = boxed(reading.sensor_id);
        }
        if self.watches_absence() {
            // Absence alerts carry a sensor's last values, and measure its silence from `now`.
            if let Some((last, rest)) = alerts.split_last_mut() {
                // The alerts take the reading's map; the sensor's copy is updated where it stands.
                for alert in rest {
                    alert.values = reading.values.clone();
                }
                overwrite(&mut sensor.last_values, &reading.values);
                last.values = reading.values;
            } else {
                sensor.last_values = reading.values;
            }
            sensor.last_seen = now;
            stream.deadlines.arm(&self.rules, index, sensor, states);
        } else if let Some((last, rest)) = alerts.split_last_mut() {
            // Without absence no one needs a sensor's last values, so the reading's map goes to its last alert.
            for alert in rest {
                alert.values = reading.values.clone();
            }
            last.values = reading.values;
        }
    }

    /// Validates `reading` and puts its value of each metric the rule set reads into `slot_values`.
    ///
    /// A rule set that reads a few metrics (nearly every one) does both in one pass over the reading's values,
    /// finding each metric's slot by comparing names, which costs less than hashing them; otherwise, and to name the
    /// error of an invalid reading, it validates, then looks each metric up.
    ///
    /// # Errors
    /// The reading is invalid ([`validate`]); `slot_values` then holds no meaning.
    pub(crate) fn read_values(
        &self,
        reading: &Reading,
        slot_values: &mut Vec<Option<f64>>,
    ) -> Result<(), ReadingError> {
        /// Up to this many metric names, comparing a reading's names with each costs less than hashing them.
        const COMPARED: usize = 8;
        let names = self.metrics.names();
        slot_values.clear();
        slot_values.resize(names.len(), None);
        if names.len() <= COMPARED && id_and_count_are_valid(reading) {
            let mut valid = true;
            for (name, &value) in &reading.values {
                valid &= metric_is_valid(name, value);
                if let Some(slot) = names.iter().position(|known| known == name) {
                    slot_values[slot] = Some(value);
                }
            }
            if valid {
                return Ok(());
            }
        }
        validate(reading)?;
        for (slot, name) in slot_values.iter_mut().zip(names) {
            *slot = reading.values.get(name).copied();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_keeps_its_allocation_when_exact_and_is_copied_when_not() {
        let exact = String::from("line-0007/temperature");
        let at = exact.as_ptr();
        let exact = boxed(exact);
        assert_eq!(exact.as_ptr(), at, "an exact allocation is taken as it is");
        let mut roomy = String::with_capacity(8);
        roomy.push_str("s1");
        let roomy_at = roomy.as_ptr();
        let boxed_id = boxed(roomy);
        // A copy: made while the roomy allocation still lives, so it cannot be at the same address (a shrink in
        // place, what `into_boxed_str` may do, would be).
        assert_ne!(boxed_id.as_ptr(), roomy_at, "a roomy allocation is copied, not shrunk");
        assert_eq!(&*boxed_id, "s1");
    }
}
