//! The state one stream keeps: each sensor it has seen, with one state per rule (firing or not, the window
//! functions' histories), and the stream's absence deadlines. The stream owns it, so it needs no lock and is freed
//! with the stream.

use std::{
    hash::BuildHasher as _,
    time::{Duration, SystemTime},
};

use hashbrown::HashTable;

use crate::{
    absence::Deadlines,
    reading::Values,
    rule::{Rule, RuleText},
    rule_set::RuleSet,
    sensor_id::SensorId,
    state::RuleState,
    window::Window,
};

/// The per-sensor state of one stream.
#[derive(Debug)]
pub struct StreamState {
    /// Sensor id → index in `sensors`, keyed by the id the sensor itself holds (no second copy of it) and hashed
    /// once per reading. foldhash instead of SipHash: the lookup is on every reading (2x faster in
    /// `benches/engine.rs`); its per-stream random seed still defeats precomputed collisions, and ids come only
    /// from this stream's own client, bounded by `max_sensors`.
    index: HashTable<usize>,
    /// The index's hasher.
    hasher: foldhash::fast::RandomState,
    /// The sensor of the previous reading, checked before the index: a stream often carries one sensor, or runs of
    /// one sensor's readings, and comparing one id costs a fraction of hashing it.
    last_found: usize,
    pub(crate) sensors: Vec<SensorState>,
    /// Every sensor's rule states, `rules_per_sensor` of them a sensor, in sensor order: one allocation for the
    /// stream rather than one per sensor, and a sensor's states next to each other.
    pub(crate) rule_states: Vec<SensorRule>,
    /// How many rule states each sensor has (the rule set's rules).
    pub(crate) rules_per_sensor: usize,
    /// A reading of a new sensor beyond this many is applied to no rule and yields a `sensor_limit` event.
    pub(crate) max_sensors: usize,
    /// A reading older than its sensor's latest by more than this yields a `late_reading` event.
    pub(crate) lateness: Duration,
    /// Reused per reading: the reading's value for each metric slot.
    pub(crate) slot_values: Vec<Option<f64>>,
    /// Reused per rule: the two sides of each comparison of its condition and resolve condition, for explanations.
    pub(crate) term_values: Vec<crate::eval::TermValue>,
    /// When each watched sensor's next absence check is due.
    pub(crate) deadlines: Deadlines,
    /// The stream's own copies of each rule's name and messages, in rule order (made with the first sensor and on adoption).
    pub(crate) texts: Vec<RuleText>,
}

/// One sensor's state. What every reading reads and writes (the id, the latest time, the last seq) comes first, in
/// declaration order, and the state starts on a cache line of its own: with many sensors, a reading without absence
/// rules touches one line of it, where the same 128 bytes, unordered and unaligned, had it straddle two or three.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct SensorState {
    /// Inline when short: the index's comparison reads it from the state it is about to use anyway.
    pub(crate) id: SensorId,
    /// The latest reading time seen (event time).
    pub(crate) latest: Option<SystemTime>,
    /// The `seq` of its last applied reading.
    pub(crate) last_seq: u64,
    /// Server time of its last applied reading: absence is measured from here.
    pub(crate) last_seen: SystemTime,
    /// The values of its last applied reading, which absence alerts (and reload alerts) carry; kept only when the
    /// rule set watches absence.
    pub(crate) last_values: Values,
    /// Whether it has an entry in the stream's deadlines.
    pub(crate) armed: bool,
}

/// One rule's state for one sensor.
#[derive(Debug)]
pub(crate) struct SensorRule {
    /// Whether the rule's `sensors` patterns match this sensor (decided once).
    pub(crate) applies: bool,
    pub(crate) state: RuleState,
    pub(crate) windows: Vec<Window>,
}

impl SensorRule {
    /// A fresh state of `rule` for the sensor `sensor_id`: not firing, empty windows.
    pub(crate) fn new(rule: &Rule, sensor_id: &str) -> Self {
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
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            last_found: 0,
            sensors: Vec::new(),
            rule_states: Vec::new(),
            rules_per_sensor: 0,
            max_sensors,
            lateness,
            slot_values: Vec::new(),
            term_values: Vec::new(),
            deadlines: Deadlines::default(),
            texts: Vec::new(),
        }
    }

    /// How many sensors the stream tracks.
    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }

    /// Every sensor the stream tracks: its id, its latest reading time and the `seq` of its last applied reading.
    pub fn sensors(&self) -> impl Iterator<Item = (&str, Option<SystemTime>, u64)> {
        self.sensors.iter().map(|s| (s.id.as_str(), s.latest, s.last_seq))
    }

    /// Every (sensor, rule) firing now, as the sensor's id and the rule's index in the rule set the stream is on,
    /// in sensor order then rule order.
    pub fn firing(&self) -> impl Iterator<Item = (&str, usize)> {
        let n = self.rules_per_sensor;
        self.rule_states.iter().enumerate().filter(|(_, state)| state.state.is_firing()).map(move |(at, _)| {
            let (sensor, rule) = (at / n.max(1), at % n.max(1));
            (self.sensors[sensor].id.as_str(), rule)
        })
    }

    /// The `seq` of sensor `id`'s latest applied reading (0 when it had none), if the stream tracks the sensor.
    pub fn last_seq(&self, id: &str) -> Option<u64> {
        self.find(id).map(|index| self.sensors[index].last_seq)
    }

    /// Whether the stream tracks sensor `id`.
    pub fn tracks(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    /// The rules (by index in the rule set the stream is on) firing for sensor `id`.
    pub fn firing_rules(&self, id: &str) -> impl Iterator<Item = usize> + '_ {
        let n = self.rules_per_sensor;
        let states = self.find(id).map_or(&[][..], |index| &self.rule_states[index * n..(index + 1) * n]);
        states.iter().enumerate().filter(|(_, state)| state.state.is_firing()).map(|(rule, _)| rule)
    }

    /// The index of sensor `id`'s state, if the stream tracks it.
    pub(crate) fn find(&self, id: &str) -> Option<usize> {
        self.find_hashed(self.hasher.hash_one(id.as_bytes()), id)
    }

    /// [`StreamState::find`] with the id's `hash` already computed.
    fn find_hashed(&self, hash: u64, id: &str) -> Option<usize> {
        let sensors = &self.sensors;
        self.index.find(hash, |&i| sensors[i].id.as_bytes() == id.as_bytes()).copied()
    }

    /// When [`RuleSet::check_absence`] next has something to do; `None` when no sensor is watched.
    pub fn next_deadline(&self) -> Option<SystemTime> {
        self.deadlines.next()
    }

    /// The index of sensor `id`'s state, made for `rules` (first seen at server time `now`) if it is new; `None`
    /// for a new sensor beyond the limit.
    pub(crate) fn sensor_index(&mut self, rules: &RuleSet, id: &str, now: SystemTime) -> Option<usize> {
        if self.sensors.get(self.last_found).is_some_and(|sensor| sensor.id.as_bytes() == id.as_bytes()) {
            return Some(self.last_found);
        }
        let hash = self.hasher.hash_one(id.as_bytes());
        if let Some(index) = self.find_hashed(hash, id) {
            self.last_found = index;
            return Some(index);
        }
        if self.sensors.len() >= self.max_sensors {
            return None;
        }
        if self.sensors.is_empty() {
            // The first sensor fixes the rule set the stream is on (`adopt` moves it to another).
            self.rules_per_sensor = rules.rules.len();
            self.texts = rules.rules.iter().map(Rule::own_text).collect();
            // Most streams carry one sensor: room for exactly one, where the default growth would hold four
            // (512 bytes) in every stream.
            self.sensors.reserve_exact(1);
        }
        self.rule_states.extend(rules.rules.iter().map(|rule| SensorRule::new(rule, id)));
        self.sensors.push(SensorState {
            id: SensorId::new(id),
            latest: None,
            last_seen: now,
            last_seq: 0,
            last_values: Values::default(),
            armed: false,
        });
        let (index, sensors, hasher) = (self.sensors.len() - 1, &self.sensors, &self.hasher);
        self.index.insert_unique(hash, index, |&i| hasher.hash_one(sensors[i].id.as_bytes()));
        self.last_found = index;
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of, size_of};

    use super::SensorState;

    #[test]
    fn what_every_reading_touches_lies_in_the_first_cache_line_of_a_sensors_state() {
        assert_eq!(align_of::<SensorState>(), 64);
        for end in [
            offset_of!(SensorState, id) + size_of::<crate::sensor_id::SensorId>(),
            offset_of!(SensorState, latest) + size_of::<Option<std::time::SystemTime>>(),
            offset_of!(SensorState, last_seq) + size_of::<u64>(),
        ] {
            assert!(end <= 64, "a hot field ends at byte {end}");
        }
        assert!(size_of::<SensorState>() <= 128, "{} bytes", size_of::<SensorState>());
    }
}
