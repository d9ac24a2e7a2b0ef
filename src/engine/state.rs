//! The per-(sensor, rule) state machine: not firing → (after `for`) FIRING → RESOLVED, in `change` or `every` mode.

use std::time::{Duration, SystemTime};

use super::reading::AlertState;

/// When a rule fires: on each change of state, or on every reading while its condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notify {
    /// FIRING when the condition turns true (after its `for`), RESOLVED when it turns false.
    #[default]
    Change,
    /// FIRING on every reading where the condition holds (after its `for`), one RESOLVED when it turns false.
    Every,
}

impl Notify {
    /// The name used in rules files.
    pub fn as_str(self) -> &'static str {
        match self {
            Notify::Change => "change",
            Notify::Every => "every",
        }
    }
}

/// How long a condition must hold before its rule fires (the rules file's `for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// This many true readings in a row; the rule fires on the last of them.
    Readings(u64),
    /// This long on reading time, from the first reading of an unbroken true run.
    Duration(Duration),
}

/// One rule's state for one sensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RuleState {
    firing: bool,
    /// Length of the current unbroken run of true readings (0: the condition is false or never seen).
    run_len: u64,
    /// Time of the first reading of the current true run.
    run_start: Option<SystemTime>,
}

impl RuleState {
    /// Advances the state by one reading on which the condition was `holds`, and says which alert that yields.
    pub(crate) fn step(
        &mut self,
        holds: bool,
        hold: Option<Hold>,
        notify: Notify,
        time: SystemTime,
    ) -> Option<AlertState> {
        if !holds {
            self.run_len = 0;
            self.run_start = None;
            let was_firing = std::mem::replace(&mut self.firing, false);
            return was_firing.then_some(AlertState::Resolved);
        }
        self.run_len = self.run_len.saturating_add(1);
        let run_start = *self.run_start.get_or_insert(time);
        let held = match hold {
            None => true,
            Some(Hold::Readings(n)) => self.run_len >= n,
            Some(Hold::Duration(d)) => time.duration_since(run_start).unwrap_or(Duration::ZERO) >= d,
        };
        if !held {
            return None;
        }
        let was_firing = std::mem::replace(&mut self.firing, true);
        (notify == Notify::Every || !was_firing).then_some(AlertState::Firing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertState::{Firing as F, Resolved as R};

    /// Feeds (seconds, holds) pairs and collects what each step yields.
    fn run(hold: Option<Hold>, notify: Notify, steps: &[(u64, bool)]) -> Vec<Option<AlertState>> {
        let mut state = RuleState::default();
        steps
            .iter()
            .map(|&(secs, holds)| state.step(holds, hold, notify, SystemTime::UNIX_EPOCH + Duration::from_secs(secs)))
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
}
