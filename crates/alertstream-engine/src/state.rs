//! The per-(sensor, rule) state machine: not firing → (after `for`) FIRING → RESOLVED, in `change` or `every` mode.

use std::time::{Duration, SystemTime};

use crate::{
    alert::AlertState,
    snapshot::{
        SnapshotError,
        codec::{Reader, Writer},
    },
};

/// When a rule fires: on each change of state, or on every reading while its condition holds. Its text form
/// (`change`, `every`) is in `text.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notify {
    /// FIRING when the condition turns true (after its `for`), RESOLVED when it turns false.
    #[default]
    Change,
    /// FIRING on every reading where the condition holds (after its `for`), one RESOLVED when it turns false.
    Every,
}

/// How long a condition must hold before its rule fires (the rules file's `for`). Its text form (`30s`,
/// `5 readings`) is in `text.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// This many true readings in a row; the rule fires on the last of them.
    Readings(u64),
    /// This long on reading time, from the first reading of an unbroken true run.
    Duration(Duration),
}

/// When a rule fires and resolves: the rules file's `notify`, `for` and `keep_firing_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// FIRING once per firing, or on every reading that holds.
    pub notify: Notify,
    /// How long the condition must hold before the rule fires.
    pub hold: Option<Hold>,
    /// How long the rule keeps firing once it would resolve.
    pub keep_firing_for: Option<Hold>,
}

/// An unbroken run of readings on which something held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Run {
    len: u64,
    start: Option<SystemTime>,
}

impl Run {
    fn extend(&mut self, time: SystemTime) {
        self.len = self.len.saturating_add(1);
        self.start.get_or_insert(time);
    }

    fn reset(&mut self) {
        *self = Self::default();
    }

    /// Whether the run has lasted `hold` as of a reading at `time` (no hold: as soon as it starts).
    fn lasted(&self, hold: Option<Hold>, time: SystemTime) -> bool {
        match hold {
            None => self.len > 0,
            Some(Hold::Readings(n)) => self.len >= n,
            Some(Hold::Duration(d)) => {
                self.start.is_some_and(|start| time.duration_since(start).unwrap_or(Duration::ZERO) >= d)
            }
        }
    }
}

/// One rule's firing state for one sensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RuleState {
    firing: bool,
    /// The current run of readings on which the condition held.
    holding: Run,
    /// While firing, the current run of readings on which the rule would resolve.
    clearing: Run,
}

impl RuleState {
    /// Whether the rule is firing for the sensor.
    pub(crate) fn is_firing(&self) -> bool {
        self.firing
    }

    /// Stops firing without a reading (absence rules, which the next reading resolves, and reloads).
    pub(crate) fn set_firing(&mut self, firing: bool) {
        *self = Self { firing, ..Self::default() };
    }

    /// Advances the state by one reading and says which alert it yields. `fires`: the condition held; `clears`:
    /// the rule would resolve (its `resolve` condition held, or without one, the condition did not).
    pub(crate) fn step(&mut self, fires: bool, clears: bool, timing: &Timing, time: SystemTime) -> Option<AlertState> {
        if fires {
            self.holding.extend(time);
        } else {
            self.holding.reset();
        }
        if self.firing {
            if clears && !fires {
                self.clearing.extend(time);
                if self.clearing.lasted(timing.keep_firing_for, time) {
                    *self = Self::default();
                    return Some(AlertState::Resolved);
                }
                return None;
            }
            self.clearing.reset();
            let again = fires && timing.notify == Notify::Every && self.holding.lasted(timing.hold, time);
            return again.then_some(AlertState::Firing);
        }
        if fires && self.holding.lasted(timing.hold, time) {
            self.firing = true;
            return Some(AlertState::Firing);
        }
        None
    }
}

impl RuleState {
    /// Writes the state for a snapshot.
    pub(crate) fn encode(&self, out: &mut Writer) {
        out.bool(self.firing);
        for run in [&self.holding, &self.clearing] {
            out.u64(run.len);
            out.option_time(run.start);
        }
    }

    /// Reads a state [`encode`](Self::encode) wrote.
    pub(crate) fn decode(input: &mut Reader<'_>) -> Result<Self, SnapshotError> {
        let firing = input.bool()?;
        let mut run = || -> Result<Run, SnapshotError> { Ok(Run { len: input.u64()?, start: input.option_time()? }) };
        Ok(Self { firing, holding: run()?, clearing: run()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::{Firing as F, Resolved as R};

    /// Feeds (seconds, holds) pairs and collects what each step yields.
    fn run(hold: Option<Hold>, notify: Notify, steps: &[(u64, bool)]) -> Vec<Option<AlertState>> {
        let timing = Timing { notify, hold, keep_firing_for: None };
        run_with(&timing, &steps.iter().map(|&(t, holds)| (t, holds, !holds)).collect::<Vec<_>>())
    }

    /// Feeds (seconds, fires, clears) triples and collects what each step yields.
    fn run_with(timing: &Timing, steps: &[(u64, bool, bool)]) -> Vec<Option<AlertState>> {
        let mut state = RuleState::default();
        steps
            .iter()
            .map(|&(secs, fires, clears)| {
                state.step(fires, clears, timing, SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            })
            .collect()
    }

    fn untimed(values: &[bool]) -> Vec<(u64, bool)> {
        values.iter().map(|&v| (0, v)).collect()
    }

    #[test]
    fn change_mode_fires_once_and_resolves_once() {
        let steps = untimed(&[false, true, true, false, false, true]);
        assert_eq!(run(None, Notify::Change, &steps), [None, Some(F), None, Some(R), None, Some(F)]);
    }

    #[test]
    fn every_mode_fires_on_each_true_reading() {
        let steps = untimed(&[true, true, false, false, true]);
        assert_eq!(run(None, Notify::Every, &steps), [Some(F), Some(F), Some(R), None, Some(F)]);
    }

    #[test]
    fn count_hold_fires_on_the_nth_true_reading_in_a_row() {
        let hold = Some(Hold::Readings(3));
        let steps = untimed(&[true, true, false, true, true, true, true, false]);
        assert_eq!(run(hold, Notify::Change, &steps), [None, None, None, None, None, Some(F), None, Some(R)]);
        assert_eq!(run(hold, Notify::Every, &steps), [None, None, None, None, None, Some(F), Some(F), Some(R)]);
    }

    #[test]
    fn duration_hold_uses_reading_time_from_the_start_of_the_run() {
        let hold = Some(Hold::Duration(Duration::from_secs(30)));
        let steps = [(0, true), (29, true), (30, true), (31, true), (40, false), (50, true), (79, true), (80, true)];
        assert_eq!(run(hold, Notify::Change, &steps), [None, None, Some(F), None, Some(R), None, None, Some(F)]);
    }

    #[test]
    fn a_true_run_shorter_than_its_hold_yields_nothing() {
        let hold = Some(Hold::Duration(Duration::from_secs(30)));
        assert_eq!(run(hold, Notify::Change, &[(0, true), (10, true), (20, false)]), [None, None, None]);
    }

    #[test]
    fn a_resolve_condition_gives_hysteresis() {
        // Fire at t > 30, resolve only at t < 28: readings 31, 29, 27, 29, 31.
        let temps = [31.0, 29.0, 27.0, 29.0, 31.0];
        let steps: Vec<(u64, bool, bool)> = temps.iter().map(|&t| (0, t > 30.0, t < 28.0)).collect();
        assert_eq!(run_with(&Timing::default(), &steps), [Some(F), None, Some(R), None, Some(F)]);
    }

    #[test]
    fn keep_firing_for_delays_the_resolution() {
        let keep = Timing { keep_firing_for: Some(Hold::Duration(Duration::from_secs(20))), ..Timing::default() };
        let steps = [
            (0, true, false),
            (10, false, true),
            (20, true, false),
            (30, false, true),
            (45, false, true),
            (50, false, true),
        ];
        assert_eq!(run_with(&keep, &steps), [Some(F), None, None, None, None, Some(R)]);
        let keep = Timing { keep_firing_for: Some(Hold::Readings(2)), ..Timing::default() };
        let steps = [(0, true, false), (1, false, true), (2, false, true), (3, false, true)];
        assert_eq!(run_with(&keep, &steps), [Some(F), None, Some(R), None]);
    }
}
