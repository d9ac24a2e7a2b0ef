//! Absence: rules that fire for a sensor that reported and then went quiet (`absent_for`). A stream keeps one
//! deadline heap with at most one entry per sensor; readings only move the sensor's `last_seen`, so the
//! per-reading path never touches the heap but to arm a sensor that has no entry, and a due entry whose sensor has
//! spoken since is rescheduled.

use std::{cmp::Reverse, collections::BinaryHeap, time::SystemTime};

use crate::{
    alert::{Alert, AlertState},
    rule::{Rule, Watch},
    rule_set::RuleSet,
    stream_state::{SensorState, StreamState},
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
    pub(crate) fn arm(&mut self, rules: &[Rule], index: usize, sensor: &mut SensorState) {
        if sensor.armed {
            return;
        }
        let next = rules
            .iter()
            .zip(&sensor.rules)
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
            let sensor = &mut stream.sensors[index];
            sensor.armed = false;
            for (rule, sensor_rule) in self.rules.iter().zip(sensor.rules.iter_mut()) {
                let Watch::Absence(silence) = rule.watch else { continue };
                let due = sensor.last_seen.checked_add(silence);
                if sensor_rule.applies && !sensor_rule.state.is_firing() && due.is_some_and(|due| due <= now) {
                    sensor_rule.state.set_firing(true);
                    out.push(Alert::of_last_reading(
                        rule,
                        AlertState::Firing,
                        &sensor.id,
                        sensor.last_seq,
                        &sensor.last_values,
                        now,
                    ));
                }
            }
            stream.deadlines.arm(&self.rules, index, sensor);
        }
    }
}
