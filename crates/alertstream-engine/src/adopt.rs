//! Hot reload inside a stream: the move of a stream's state from one rule set to the next, between readings; and
//! what still fires when a stream ends.

use std::time::SystemTime;

use crate::{
    alert::{Alert, AlertState},
    reading::Values,
    rule::Rule,
    rule_set::RuleSet,
    stream_state::{SensorRule, StreamState},
};

impl RuleSet {
    /// Moves `stream` from rule set `old` to this one, between readings. Rules are identified by name: a rule whose
    /// [identity](crate::RuleSpec::same_identity) did not change keeps its state and windows (its new severity,
    /// messages and labels apply from the next alert); a rule that is removed or changed sends RESOLVED for
    /// each sensor it was firing for (at server time `now`, with the sensor's last reading's seq, and its values
    /// when the old rule set watched absence, else none) before the new rules apply. A stream whose old rules
    /// watched no absence kept no time of each sensor's last reading: if the new ones do, silence counts from now.
    pub fn adopt(&self, old: &RuleSet, stream: &mut StreamState, now: SystemTime, out: &mut Vec<Alert>) {
        let carried: Vec<Option<usize>> = self
            .rules
            .iter()
            .map(|new| old.rules.iter().position(|o| o.name == new.name && o.spec().same_identity(new.spec())))
            .collect();
        stream.deadlines.clear();
        stream.texts = self.rules.iter().map(Rule::own_text).collect();
        let (old_n, new_n) = (stream.rules_per_sensor, self.rules.len());
        let mut old_states: Vec<Option<SensorRule>> =
            std::mem::take(&mut stream.rule_states).into_iter().map(Some).collect();
        let mut new_states = Vec::with_capacity(stream.sensors.len() * new_n);
        for (index, sensor) in stream.sensors.iter_mut().enumerate() {
            let previous = &mut old_states[index * old_n..(index + 1) * old_n];
            new_states.extend(self.rules.iter().zip(&carried).map(|(rule, from)| {
                from.and_then(|i| previous.get_mut(i).and_then(Option::take))
                    .unwrap_or_else(|| SensorRule::new(rule, sensor.id.as_str()))
            }));
            // Last values are kept only while absence is watched: without it, those at hand may be older than the
            // sensor's last reading, and the alerts carry none.
            let last_values = if old.watches_absence() { &sensor.last_values } else { &Values::default() };
            for (rule, left) in old.rules.iter().zip(previous.iter()) {
                if left.as_ref().is_some_and(|l| l.state.is_firing()) {
                    out.push(Alert::of_last_reading(
                        rule,
                        AlertState::Resolved,
                        sensor.id.as_str(),
                        sensor.last_seq,
                        last_values,
                        now,
                    ));
                }
            }
            if !self.watches_absence() {
                sensor.last_values = Values::default();
            }
            if !old.watches_absence() && self.watches_absence() {
                sensor.last_seen = now;
            }
            sensor.armed = false;
            stream.deadlines.arm(&self.rules, index, sensor, &new_states[index * new_n..(index + 1) * new_n]);
        }
        stream.rule_states = new_states;
        stream.rules_per_sensor = new_n;
    }
}

impl RuleSet {
    /// What fires in `stream` now, each as the RESOLVED alert it would end with: its rule's resolve message, the
    /// sensor's last reading's seq (and values, when this rule set watches absence, else none), at server time
    /// `now`. For a stream that ended while firing: the alerts that no later reading of its will resolve.
    pub fn still_firing(&self, stream: &StreamState, now: SystemTime) -> Vec<Alert> {
        self.firing_as(stream, 0..stream.sensors.len(), AlertState::Resolved, now)
    }

    /// What fires for sensor `sensor_id` in `stream` now, each as a FIRING alert of the sensor's last reading (its
    /// seq, and its values when this rule set watches absence), at server time `now`: what a stream that restored
    /// the sensor's state from another process re-announces to its sinks.
    pub fn firing_now(&self, stream: &StreamState, sensor_id: &str, now: SystemTime) -> Vec<Alert> {
        match stream.find(sensor_id) {
            Some(index) => self.firing_as(stream, index..index + 1, AlertState::Firing, now),
            None => Vec::new(),
        }
    }

    /// The rules firing for the sensors at `sensors` (indices) in `stream`, as alerts in `state`.
    fn firing_as(
        &self,
        stream: &StreamState,
        sensors: std::ops::Range<usize>,
        state: AlertState,
        now: SystemTime,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if stream.rules_per_sensor != self.rules.len() {
            return alerts;
        }
        let no_values = Values::default();
        let n = self.rules.len();
        for index in sensors {
            let sensor = &stream.sensors[index];
            let values = if self.watches_absence() { &sensor.last_values } else { &no_values };
            for (rule, rule_state) in self.rules.iter().zip(&stream.rule_states[index * n..(index + 1) * n]) {
                if rule_state.state.is_firing() {
                    alerts.push(Alert::of_last_reading(rule, state, sensor.id.as_str(), sensor.last_seq, values, now));
                }
            }
        }
        alerts
    }
}
