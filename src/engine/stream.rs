//! The per-stream state and the per-reading path: validate, find the sensor, apply each rule, collect alerts; and
//! the absence timers, and the move of state to a reloaded rule set.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{
    INVALID_READING, LATE_READING, SENSOR_LIMIT,
    eval::Inputs,
    reading::{Alert, AlertState, Reading, Severity},
    rule::{Rule, RuleSet, Watch},
    state::RuleState,
    validate::{ReadingError, validate},
    window::Window,
};

/// The per-sensor state of one stream. The stream owns it, so it needs no lock and is freed with the stream.
#[derive(Debug)]
pub struct StreamState {
    /// Sensor id → index in `sensors`. foldhash instead of SipHash: the lookup is on every reading (2x faster in
    /// `benches/engine.rs`); its per-map random seed still defeats precomputed collisions, and ids come only from
    /// this stream's own client, bounded by `max_sensors`.
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    sensors: Vec<SensorState>,
    /// A reading of a new sensor beyond this many is applied to no rule and yields a `sensor_limit` event.
    max_sensors: usize,
    /// A reading older than its sensor's latest by more than this yields a `late_reading` event.
    lateness: Duration,
    /// Reused per reading: the reading's value for each metric slot.
    slot_values: Vec<Option<f64>>,
    /// When each watched sensor's next absence check is due (server time), earliest first. One entry per sensor at
    /// most: readings only move the sensor's `last_seen`, and a due entry whose sensor has spoken since is
    /// rescheduled, so the per-reading path never touches the heap.
    deadlines: BinaryHeap<Reverse<(SystemTime, usize)>>,
}

/// One sensor's state.
#[derive(Debug)]
struct SensorState {
    id: String,
    /// One per rule of the rule set, in rule order.
    rules: Vec<SensorRule>,
    /// The latest reading time seen (event time).
    latest: Option<SystemTime>,
    /// Server time of its last applied reading: absence is measured from here.
    last_seen: SystemTime,
    last_seq: u64,
    /// The values of its last applied reading, which absence alerts (and reload alerts) carry; kept only when the
    /// rule set watches absence.
    last_values: HashMap<String, f64>,
    /// Whether it has an entry in `deadlines`.
    armed: bool,
}

/// One rule's state for one sensor.
#[derive(Debug)]
struct SensorRule {
    /// Whether the rule's `sensors` patterns match this sensor (decided once).
    applies: bool,
    state: RuleState,
    windows: Vec<Window>,
}

impl SensorRule {
    fn new(rule: &Rule, sensor_id: &str) -> Self {
        Self {
            applies: rule.applies_to(sensor_id),
            state: RuleState::default(),
            windows: rule.windows.iter().map(|w| w.instantiate()).collect(),
        }
    }
}

impl StreamState {
    /// An empty state that tracks at most `max_sensors` sensors and applies readings up to `lateness` behind their
    /// sensor's latest.
    pub fn new(max_sensors: usize, lateness: Duration) -> Self {
        Self {
            index: HashMap::default(),
            sensors: Vec::new(),
            max_sensors,
            lateness,
            slot_values: Vec::new(),
            deadlines: BinaryHeap::new(),
        }
    }

    /// How many sensors the stream tracks.
    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }

    /// When [`RuleSet::check_absence`] next has something to do; `None` when no sensor is watched.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.deadlines.peek().map(|Reverse((deadline, _))| *deadline)
    }
}

impl RuleSet {
    /// Evaluates one reading of a stream, received at server time `now`: validates it, updates its sensor's state
    /// and appends the alerts it yields to `out`, in rule order.
    ///
    /// An invalid reading, a new sensor beyond the stream's limit, or a reading too far behind its sensor's latest
    /// changes no state and yields one event alert.
    pub fn evaluate(&self, stream: &mut StreamState, reading: Reading, now: SystemTime, out: &mut Vec<Alert>) {
        if let Err(error) = validate(&reading) {
            out.push(invalid_reading(&reading, &error));
            return;
        }
        let index = match stream.index.get(&reading.sensor_id) {
            Some(&index) => index,
            None if stream.sensors.len() >= stream.max_sensors => {
                let message = format!(
                    "sensor limit reached: this stream already tracks {} sensors; reading of `{}` not applied",
                    stream.max_sensors, reading.sensor_id
                );
                out.push(event(SENSOR_LIMIT, message, &reading));
                return;
            }
            None => {
                let id = reading.sensor_id.clone();
                stream.sensors.push(SensorState {
                    rules: self.rules.iter().map(|rule| SensorRule::new(rule, &id)).collect(),
                    id: id.clone(),
                    latest: None,
                    last_seen: now,
                    last_seq: 0,
                    last_values: HashMap::new(),
                    armed: false,
                });
                stream.index.insert(id, stream.sensors.len() - 1);
                stream.sensors.len() - 1
            }
        };
        let sensor = &mut stream.sensors[index];
        let latest = match sensor.latest {
            Some(latest) if latest.duration_since(reading.time).is_ok_and(|behind| behind > stream.lateness) => {
                let message = format!(
                    "late reading: {} behind sensor `{}`'s latest, over the allowed lateness of {}; not applied",
                    crate::units::format_duration(latest.duration_since(reading.time).unwrap_or_default()),
                    reading.sensor_id,
                    crate::units::format_duration(stream.lateness)
                );
                out.push(event(LATE_READING, message, &reading));
                return;
            }
            Some(latest) => latest.max(reading.time),
            None => reading.time,
        };
        sensor.latest = Some(latest);
        self.fill_slots(&reading, &mut stream.slot_values);
        let inputs = Inputs { values: &stream.slot_values, time: reading.time, latest };
        let first = out.len();
        for (rule, sensor_rule) in self.rules.iter().zip(sensor.rules.iter_mut()) {
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
                    if !condition.has_inputs(inputs.values)
                        || resolve.as_ref().is_some_and(|r| !r.has_inputs(inputs.values))
                    {
                        continue;
                    }
                    let fires = condition.evaluate(&inputs, &mut sensor_rule.windows);
                    let clears = resolve.as_ref().map(|r| r.evaluate(&inputs, &mut sensor_rule.windows));
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
                // The values are filled in below, moved rather than copied where they can be.
                let message = rule.render(&reading.sensor_id, &reading.values);
                out.push(alert(rule, state, &reading.sensor_id, reading.seq, reading.time, message, HashMap::new()));
            }
        }
        sensor.last_seen = now;
        sensor.last_seq = reading.seq;
        let alerts = &mut out[first..];
        if self.watches_absence() {
            for alert in alerts.iter_mut() {
                alert.values = reading.values.clone();
            }
            sensor.last_values = reading.values;
            arm(&self.rules, &mut stream.deadlines, index, sensor);
        } else if let Some((last, rest)) = alerts.split_last_mut() {
            // Only absence alerts need a sensor's last values, so the reading's map goes to its last alert.
            for alert in rest {
                alert.values = reading.values.clone();
            }
            last.values = reading.values;
        }
    }

    /// Fires the absence rules of every sensor that has been silent long enough as of server time `now`, appending
    /// their alerts to `out` (they carry the sensor's last reading's seq and values, and `now`).
    pub fn check_absence(&self, stream: &mut StreamState, now: SystemTime, out: &mut Vec<Alert>) {
        while let Some(&Reverse((deadline, index))) = stream.deadlines.peek() {
            if deadline > now {
                break;
            }
            stream.deadlines.pop();
            let sensor = &mut stream.sensors[index];
            sensor.armed = false;
            for (rule, sensor_rule) in self.rules.iter().zip(sensor.rules.iter_mut()) {
                let Watch::Absence(silence) = rule.watch else { continue };
                let due = sensor.last_seen.checked_add(silence);
                if sensor_rule.applies && !sensor_rule.state.is_firing() && due.is_some_and(|due| due <= now) {
                    sensor_rule.state.set_firing(true);
                    out.push(last_reading_alert(
                        rule,
                        AlertState::Firing,
                        &sensor.id,
                        sensor.last_seq,
                        &sensor.last_values,
                        now,
                    ));
                }
            }
            arm(&self.rules, &mut stream.deadlines, index, sensor);
        }
    }

    /// Moves `stream` from rule set `old` to this one, between readings. Rules are identified by name: a rule whose
    /// definition did not change keeps its state and windows; a rule that is removed or changed sends RESOLVED for
    /// each sensor it was firing for (at server time `now`, with the sensor's last reading's seq, and its values
    /// when the old rule set watched absence, else none) before the new rules apply.
    pub fn adopt(&self, old: &RuleSet, stream: &mut StreamState, now: SystemTime, out: &mut Vec<Alert>) {
        let carried: Vec<Option<usize>> = self
            .rules
            .iter()
            .map(|new| old.rules.iter().position(|o| o.name == new.name && o.spec() == new.spec()))
            .collect();
        stream.deadlines.clear();
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
                    out.push(last_reading_alert(
                        rule,
                        AlertState::Resolved,
                        &sensor.id,
                        sensor.last_seq,
                        &sensor.last_values,
                        now,
                    ));
                }
            }
            sensor.armed = false;
            arm(&self.rules, &mut stream.deadlines, index, sensor);
        }
    }

    /// Evaluates one reading on its own, with no state: each rule's condition on this reading alone, `for` ignored,
    /// and rules that need history (window functions, absence) skipped. Appends one FIRING alert per rule whose
    /// condition holds, in rule order.
    ///
    /// # Errors
    /// The reading is invalid.
    pub fn evaluate_stateless(&self, reading: &Reading, out: &mut Vec<Alert>) -> Result<(), ReadingError> {
        validate(reading)?;
        let mut slot_values = Vec::new();
        self.fill_slots(reading, &mut slot_values);
        let inputs = Inputs { values: &slot_values, time: reading.time, latest: reading.time };
        for rule in &self.rules {
            let Watch::Condition { condition, .. } = &rule.watch else { continue };
            if rule.needs_history() || !rule.applies_to(&reading.sensor_id) || !condition.has_inputs(&slot_values) {
                continue;
            }
            if condition.evaluate(&inputs, &mut []) == Some(true) {
                out.push(alert(
                    rule,
                    AlertState::Firing,
                    &reading.sensor_id,
                    reading.seq,
                    reading.time,
                    rule.render(&reading.sensor_id, &reading.values),
                    reading.values.clone(),
                ));
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

/// Schedules the sensor's next absence check, unless it has one: the earliest moment one of its absence rules that
/// is not firing could fire.
fn arm(
    rules: &[Rule],
    deadlines: &mut BinaryHeap<Reverse<(SystemTime, usize)>>,
    index: usize,
    sensor: &mut SensorState,
) {
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
        deadlines.push(Reverse((deadline, index)));
        sensor.armed = true;
    }
}

/// The in-band `invalid_reading` event for a reading that failed validation, or whose wire form could not become a
/// [`Reading`] at all (the caller found the error).
pub fn invalid_reading(reading: &Reading, error: &ReadingError) -> Alert {
    event(INVALID_READING, error.to_string(), reading)
}

fn alert(
    rule: &Rule,
    state: AlertState,
    sensor_id: &str,
    seq: u64,
    time: SystemTime,
    message: Arc<str>,
    values: HashMap<String, f64>,
) -> Alert {
    Alert {
        sensor_id: sensor_id.to_owned(),
        rule: Arc::clone(&rule.name),
        state,
        severity: rule.spec().severity,
        message,
        reading_seq: seq,
        time,
        values,
    }
}

/// An alert no reading caused (absence, reload): the sensor's last reading's seq and values, at server time `now`.
fn last_reading_alert(
    rule: &Rule,
    state: AlertState,
    sensor_id: &str,
    last_seq: u64,
    last_values: &HashMap<String, f64>,
    now: SystemTime,
) -> Alert {
    let message = rule.render(sensor_id, last_values);
    alert(rule, state, sensor_id, last_seq, now, message, last_values.clone())
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
