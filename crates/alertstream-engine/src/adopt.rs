//! Hot reload inside a stream: the move of a stream's state from one rule set to the next, between readings.

use std::time::SystemTime;

use crate::{
    alert::{Alert, AlertState},
    rule::Rule,
    rule_set::RuleSet,
    stream_state::{SensorRule, StreamState},
};

impl RuleSet {
    /// Moves `stream` from rule set `old` to this one, between readings. Rules are identified by name: a rule whose
    /// definition did not change keeps its state and windows; a rule that is removed or changed sends RESOLVED for
    /// each sensor it was firing for (at server time `now`, with the sensor's last reading's seq, and its values
    /// when the old rule set watched absence, else none) before the new rules apply. A stream whose old rules
    /// watched no absence kept no time of each sensor's last reading: if the new ones do, silence counts from now.
    pub fn adopt(&self, old: &RuleSet, stream: &mut StreamState, now: SystemTime, out: &mut Vec<Alert>) {
        let carried: Vec<Option<usize>> = self
            .rules
            .iter()
            .map(|new| old.rules.iter().position(|o| o.name == new.name && o.spec() == new.spec()))
            .collect();
        stream.deadlines.clear();
        stream.labels = self.rules.iter().map(Rule::own_labels).collect();
        for (index, sensor) in stream.sensors.iter_mut().enumerate() {
            let mut previous: Vec<Option<SensorRule>> =
                std::mem::take(&mut sensor.rules).into_iter().map(Some).collect();
            sensor.rules = self
                .rules
                .iter()
                .zip(&carried)
                .map(|(rule, from)| {
                    from.and_then(|i| previous.get_mut(i).and_then(Option::take))
                        .unwrap_or_else(|| SensorRule::new(rule, &sensor.id))
                })
                .collect();
            for (rule, left) in old.rules.iter().zip(previous) {
                if left.is_some_and(|l| l.state.is_firing()) {
                    out.push(Alert::of_last_reading(
                        rule,
                        AlertState::Resolved,
                        &sensor.id,
                        sensor.last_seq,
                        &sensor.last_values,
                        now,
                    ));
                }
            }
            if !old.watches_absence() && self.watches_absence() {
                sensor.last_seen = now;
            }
            sensor.armed = false;
            stream.deadlines.arm(&self.rules, index, sensor);
        }
    }
}
