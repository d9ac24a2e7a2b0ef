//! Absence: rules that fire for a sensor that reported and then went quiet (`absent_for`). A stream keeps one
//! deadline heap with at most one entry per sensor; readings only move the sensor's `last_seen`, so the
//! per-reading path never touches the heap but to arm a sensor that has no entry, and a due entry whose sensor has
//! spoken since is rescheduled.

use std::{cmp::Reverse, collections::BinaryHeap, time::SystemTime};

use crate::{
    alert::{Alert, AlertState},
    rule::{Rule, Watch},
    rule_set::RuleSet,
    stream_state::{SensorRule, SensorState, StreamState},
};

/// When each watched sensor's next absence check is due (server time), earliest first, by sensor index.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(SystemTime, usize)>>,
}

impl Deadlines {
    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<SystemTime> {
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Forgets every deadline (the rules changed: each sensor is armed again).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    /// Schedules the sensor's next absence check, unless it has one: the earliest moment one of its absence rules
    /// that is not firing could fire.
    pub(crate) fn arm(&mut self, rules: &[Rule], index: usize, sensor: &mut SensorState, states: &[SensorRule]) {
        if sensor.armed {
            return;
        }
        let next = rules
            .iter()
            .zip(states)
            .filter_map(|(rule, sensor_rule)| match rule.watch {
                Watch::Absence(silence) if sensor_rule.applies && !sensor_rule.state.is_firing() => {
                    // A silence too long to represent never ends.
                    sensor.last_seen.checked_add(silence)
                }
                _ => None,
            })
            .min();
        if let Some(deadline) = next {
            self.heap.push(Reverse((deadline, index)));
            sensor.armed = true;
        }
    }

    /// Takes the earliest entry if it is due at `now`.
    fn pop_due(&mut self, now: SystemTime) -> Option<usize> {
        match self.heap.peek() {
            Some(&Reverse((deadline, index))) if deadline <= now => {
                self.heap.pop();
                Some(index)
            }
            _ => None,
        }
    }
}

impl RuleSet {
    /// Fires the absence rules of every sensor that has been silent long enough as of server time `now`, appending
    /// their alerts to `out` (they carry the sensor's last reading's seq and values, and `now`).
    pub fn check_absence(&self, stream: &mut StreamState, now: SystemTime, out: &mut Vec<Alert>) {
        while let Some(index) = stream.deadlines.pop_due(now) {
            let n = stream.rules_per_sensor;
            let sensor = &mut stream.sensors[index];
            let states = &mut stream.rule_states[index * n..(index + 1) * n];
            sensor.armed = false;
            for (rule, sensor_rule) in self.rules.iter().zip(states.iter_mut()) {
                let Watch::Absence(silence) = rule.watch else { continue };
                let due = sensor.last_seen.checked_add(silence);
                if sensor_rule.applies && !sensor_rule.state.is_firing() && due.is_some_and(|due| due <= now) {
                    sensor_rule.state.set_firing(true);
                    out.push(Alert::of_last_reading(
                        rule,
                        AlertState::Firing,
                        sensor.id.as_str(),
                        sensor.last_seq,
                        &sensor.last_values,
                        now,
                    ));
                }
            }
            stream.deadlines.arm(&self.rules, index, sensor, states);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        reading::{Reading, Values},
        rule::RuleSpec,
    };

    #[test]
    fn a_stream_keeps_at_most_one_deadline_per_sensor() {
        let silent =
            RuleSpec { name: "silent".into(), absent_for: Some(Duration::from_secs(10)), ..RuleSpec::default() };
        let quiet = RuleSpec { name: "quiet".into(), absent_for: Some(Duration::from_secs(30)), ..RuleSpec::default() };
        let rules = RuleSet::new(vec![silent, quiet]).unwrap();
        let mut stream = StreamState::new(10, Duration::from_secs(60));
        let mut out = Vec::new();
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        for s in 0..100 {
            let sensor_id = format!("s{}", s % 3);
            let reading = Reading { sensor_id, values: Values::from_iter([("t".into(), 1.0)]), seq: s, time: at(s) };
            rules.evaluate(&mut stream, reading, at(s), &mut out);
            rules.check_absence(&mut stream, at(s), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(stream.deadlines.heap.len(), 3, "one entry per sensor, however many readings");
        // Nothing due is left behind: a due entry whose sensor has spoken since was rescheduled.
        assert!(stream.next_deadline().is_some_and(|next| next > at(99)));
    }
}
