//! The classic one-reading call (gRPC `Evaluate`, HTTP `POST /v1/evaluate`): each rule on one reading alone, no
//! state, and the answer both transports build their responses from.

use crate::{
    alert::{Alert, AlertState},
    eval::Inputs,
    reading::Reading,
    rule::Watch,
    rule_set::RuleSet,
    validate::ReadingError,
};

/// The status of an evaluation where no rule fires.
pub const ALL_GOOD: &str = "all good";

/// The answer to one reading evaluated on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The messages of the firing rules joined by one space, in rule order, or [`ALL_GOOD`].
    pub status: String,
    /// One FIRING alert per firing rule, in rule order.
    pub alerts: Vec<Alert>,
    /// The rules that could not look at the reading, in rule order, with why.
    pub skipped: Vec<Skipped>,
}

/// A rule a stateless evaluation did not check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The rule's name.
    pub rule: String,
    /// Why, as a sentence fragment: ``the reading has no `temperature` ``.
    pub reason: String,
}

impl RuleSet {
    /// Evaluates one reading on its own, with no state: each rule's condition on this reading alone, `for` ignored,
    /// and rules that need history (window functions, absence) skipped.
    ///
    /// # Errors
    /// The reading is invalid.
    pub fn evaluate_stateless(&self, reading: &Reading) -> Result<Evaluation, ReadingError> {
        let mut slot_values = Vec::new();
        self.read_values(reading, &mut slot_values)?;
        let inputs = Inputs { values: &slot_values, time: reading.time, latest: reading.time };
        let mut alerts = Vec::new();
        let mut skipped = Vec::new();
        for rule in &self.rules {
            let skip = |reason: String| Skipped { rule: rule.name().to_owned(), reason };
            let condition = match &rule.watch {
                Watch::Absence(_) => {
                    skipped.push(skip("an absence rule fires on a sensor's silence, which only a stream has".into()));
                    continue;
                }
                Watch::Condition { condition, .. } => condition,
            };
            if rule.needs_history() {
                let reason = "its conditions use window functions, which need a stream's history of the sensor";
                skipped.push(skip(reason.into()));
                continue;
            }
            if !rule.applies_to(&reading.sensor_id) {
                skipped.push(skip(format!("it applies to other sensors than `{}`", reading.sensor_id)));
                continue;
            }
            if !condition.has_inputs(&slot_values) {
                let missing: Vec<String> = condition
                    .slots
                    .iter()
                    .filter(|&&slot| slot_values[slot].is_none())
                    .map(|&slot| format!("`{}`", self.metrics.names()[slot]))
                    .collect();
                skipped.push(skip(format!("the reading has no {}", missing.join(", "))));
                continue;
            }
            let mut terms = vec![None; condition.terms.len()];
            if condition.evaluate(&inputs, &mut [], &mut terms) == Some(true) {
                let text = rule.text();
                alerts.push(Alert {
                    explanation: crate::rule_set::explain(condition, &terms, &text.terms),
                    sensor_id: reading.sensor_id.as_str().into(),
                    values: reading.values.clone(),
                    ..Alert::of_rule(
                        rule,
                        &text,
                        AlertState::Firing,
                        &reading.sensor_id,
                        reading.seq,
                        reading.time,
                        &reading.values,
                    )
                });
            }
        }
        let status = if alerts.is_empty() {
            ALL_GOOD.to_owned()
        } else {
            alerts.iter().map(|a| &*a.message).collect::<Vec<_>>().join(" ")
        };
        Ok(Evaluation { status, alerts, skipped })
    }
}
