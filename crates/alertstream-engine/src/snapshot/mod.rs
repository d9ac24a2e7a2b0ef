//! One sensor's state as bytes and back, so that a sensor's windows, detectors and firing rules outlive its stream
//! (a server keeps them in a store between streams and across restarts).
//!
//! A snapshot holds the sensor's latest reading time and `seq`, and for each rule its name, its [identity
//! key](crate::RuleSpec::identity_key), its firing state and its window functions' states. Restoring it under a rule
//! set gives each rule of the same name and identity its saved state; a rule whose identity changed, or that is
//! new, starts fresh, as on reload. The last reading's values (which absence alerts carry) are not kept.
//!
//! The form is versioned ([`SNAPSHOT_VERSION`]); a snapshot of another version, or a damaged one, is refused as a
//! whole and the sensor starts fresh.

pub(crate) mod codec;

use std::time::SystemTime;

use codec::{Reader, Writer};

use crate::{rule_set::RuleSet, state::RuleState, stream_state::StreamState, window::Window};

/// The version of the snapshot form this engine writes and reads.
pub const SNAPSHOT_VERSION: u8 = 1;
/// The first bytes of every snapshot.
const MAGIC: &[u8; 4] = b"ASSN";

/// Why a snapshot was not restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// It was written by another version of the form.
    #[error("a sensor snapshot of version {0}, not {SNAPSHOT_VERSION}")]
    Version(u8),
    /// Its bytes are not a snapshot, or are cut short or altered.
    #[error("a damaged sensor snapshot: {0}")]
    Damaged(&'static str),
    /// The stream already tracks the sensor: its live state wins.
    #[error("the stream already tracks this sensor")]
    Tracked,
    /// The stream tracks as many sensors as it may.
    #[error("the stream tracks its limit of sensors")]
    Full,
    /// The stream is on another rule set than the one restoring into it.
    #[error("the stream is on another rule set")]
    OtherRules,
}

/// What a restore brought back: how many rules got their saved state, and how many started fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Rules of the same name and identity, with their saved state.
    pub kept: usize,
    /// Rules that are new or whose identity changed, fresh.
    pub fresh: usize,
}

/// One rule's part of a snapshot, read but not yet applied.
struct SavedRule {
    rule: usize,
    state: RuleState,
    windows: Vec<Window>,
}

impl RuleSet {
    /// The state of sensor `sensor_id` in `stream`, which is on this rule set, as a snapshot; `None` when the stream
    /// does not track the sensor.
    pub fn snapshot(&self, stream: &StreamState, sensor_id: &str) -> Option<Vec<u8>> {
        let index = stream.find(sensor_id)?;
        let sensor = &stream.sensors[index];
        let n = stream.rules_per_sensor;
        let mut out = Writer::default();
        out.bytes.extend_from_slice(MAGIC);
        out.u8(SNAPSHOT_VERSION);
        out.option_time(sensor.latest);
        out.u64(sensor.last_seq);
        out.len(n);
        for (rule, saved) in self.rules.iter().zip(&stream.rule_states[index * n..(index + 1) * n]) {
            out.str(rule.name());
            out.str(&rule.spec().identity_key());
            saved.state.encode(&mut out);
            let mut windows = Writer::default();
            windows.len(saved.windows.len());
            saved.windows.iter().for_each(|w| w.encode(&mut windows));
            out.len(windows.bytes.len());
            out.bytes.extend_from_slice(&windows.bytes);
        }
        Some(out.bytes)
    }

    /// Starts tracking sensor `sensor_id` in `stream` (which is on this rule set, or tracks no sensor yet) from the
    /// snapshot `bytes`, first seen at server time `now`: rules of the same name and identity get their saved
    /// state, the others start fresh.
    ///
    /// # Errors
    /// The snapshot is of another version or damaged (nothing is applied), the stream already tracks the sensor,
    /// or it tracks its limit of sensors.
    pub fn restore(
        &self,
        stream: &mut StreamState,
        sensor_id: &str,
        bytes: &[u8],
        now: SystemTime,
    ) -> Result<Restored, SnapshotError> {
        if stream.tracks(sensor_id) {
            return Err(SnapshotError::Tracked);
        }
        if stream.sensor_count() > 0 && stream.rules_per_sensor != self.rules.len() {
            return Err(SnapshotError::OtherRules);
        }
        let mut input = Reader::new(bytes.strip_prefix(MAGIC).ok_or(SnapshotError::Damaged("not a snapshot"))?);
        let version = input.u8()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(version));
        }
        let latest = input.option_time()?;
        let last_seq = input.u64()?;
        let mut saved = Vec::new();
        for _ in 0..input.len(8)? {
            let name = input.str()?;
            let identity = input.str()?;
            let state = RuleState::decode(&mut input)?;
            let length = input.len(1)?;
            let mut windows = Reader::new(input.bytes(length)?);
            let Some(rule) = self.rules.iter().position(|r| r.name() == name && r.spec().identity_key() == identity)
            else {
                continue;
            };
            let functions = &self.rules[rule].windows;
            if windows.len(1)? != functions.len() {
                return Err(SnapshotError::Damaged("a rule's windows do not match its condition"));
            }
            let decoded = functions.iter().map(|f| Window::decode(f, &mut windows)).collect::<Result<_, _>>()?;
            if !windows.is_empty() {
                return Err(SnapshotError::Damaged("bytes after a rule's windows"));
            }
            let windows = decoded;
            if saved.iter().any(|s: &SavedRule| s.rule == rule) {
                return Err(SnapshotError::Damaged("a rule twice"));
            }
            saved.push(SavedRule { rule, state, windows });
        }
        if !input.is_empty() {
            return Err(SnapshotError::Damaged("bytes after its end"));
        }
        let index = stream.sensor_index(self, sensor_id, now).ok_or(SnapshotError::Full)?;
        let sensor = &mut stream.sensors[index];
        sensor.latest = latest;
        sensor.last_seq = last_seq;
        let n = stream.rules_per_sensor;
        let restored = Restored { kept: saved.len(), fresh: n - saved.len() };
        for SavedRule { rule, state, windows } in saved {
            let target = &mut stream.rule_states[index * n + rule];
            target.state = state;
            target.windows = windows;
        }
        Ok(restored)
    }
}

#[cfg(test)]
mod tests;
