//! What a resuming stream's client keeps (`alertstream simulate --resume`; the protocol is in docs/DEPLOYMENT.md):
//! the readings its sensors' last `checkpoint` events do not cover, sent again at the start of the next stream, and
//! the alerts it has already shown, so that one the server sends again after a restart or a failover (it restores a
//! checkpoint's state and applies the readings sent again) is dropped. Both are trimmed at each checkpoint.

use std::collections::{BTreeSet, HashMap, VecDeque};

use alertstream_engine::CHECKPOINT;

use crate::pb;

/// One connection's resume memory.
#[derive(Debug, Default)]
pub struct Resume {
    /// Per sensor, the readings sent after its last checkpoint, in order.
    unconfirmed: HashMap<String, VecDeque<pb::Reading>>,
    /// Per sensor, the alerts shown that a resent reading could cause again: (reading seq, rule, state).
    shown: HashMap<String, BTreeSet<(u64, String, i32)>>,
    /// Alerts the server sent again, dropped.
    pub duplicates: u64,
}

/// What a message from the server is to a resuming client.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A checkpoint: not an alert.
    Checkpoint,
    /// An alert already shown: dropped.
    Duplicate,
    /// An alert to show.
    New,
}

impl Resume {
    /// Keeps `reading` (sent now) until a checkpoint covers it; a reading without a seq cannot be resumed.
    pub fn sent(&mut self, reading: &pb::Reading) {
        if reading.seq > 0 {
            self.unconfirmed.entry(reading.sensor_id.clone()).or_default().push_back(reading.clone());
        }
    }

    /// Sorts out what the server sent: a checkpoint trims what is kept for its sensor; an alert is new or not.
    pub fn received(&mut self, alert: &pb::Alert) -> Received {
        if alert.rule == CHECKPOINT {
            self.checkpoint(&alert.sensor_id, alert.reading_seq);
            return Received::Checkpoint;
        }
        // An alert of a reading without a seq: never sent again (its reading is not), and nothing to tell it by.
        if alert.reading_seq == 0 {
            return Received::New;
        }
        let key = (alert.reading_seq, alert.rule.clone(), alert.state);
        if self.shown.entry(alert.sensor_id.clone()).or_default().insert(key) {
            Received::New
        } else {
            self.duplicates += 1;
            Received::Duplicate
        }
    }

    /// Sensor `sensor_id`'s state is durable up to its reading `seq`: those readings need not be sent again, and
    /// alerts of earlier readings cannot come again (an alert no reading caused, absence, carries the last
    /// reading's seq, so that seq's are kept).
    fn checkpoint(&mut self, sensor_id: &str, seq: u64) {
        if let Some(readings) = self.unconfirmed.get_mut(sensor_id) {
            while readings.front().is_some_and(|reading| reading.seq <= seq) {
                readings.pop_front();
            }
        }
        if let Some(shown) = self.shown.get_mut(sensor_id) {
            *shown = shown.split_off(&(seq, String::new(), i32::MIN));
        }
    }

    /// The readings to send again at the start of a new stream, in the order they were sent.
    pub fn to_send_again(&self) -> VecDeque<pb::Reading> {
        let mut readings: Vec<pb::Reading> = self.unconfirmed.values().flatten().cloned().collect();
        readings.sort_by_key(|reading| reading.seq);
        readings.into()
    }

    /// How many readings wait for a checkpoint.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(sensor_id: &str, seq: u64) -> pb::Reading {
        pb::Reading { sensor_id: sensor_id.to_owned(), seq, ..Default::default() }
    }

    fn alert(sensor_id: &str, rule: &str, state: i32, seq: u64) -> pb::Alert {
        pb::Alert {
            sensor_id: sensor_id.to_owned(),
            rule: rule.to_owned(),
            state,
            reading_seq: seq,
            ..Default::default()
        }
    }

    #[test]
    fn a_checkpoint_covers_its_sensors_readings_up_to_its_seq() {
        let mut resume = Resume::default();
        for (sensor, seq) in [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)] {
            resume.sent(&reading(sensor, seq));
        }
        resume.sent(&reading("a", 0)); // no seq: not resumable
        assert_eq!(resume.received(&alert("a", CHECKPOINT, 1, 3)), Received::Checkpoint);
        let again: Vec<u64> = resume.to_send_again().iter().map(|r| r.seq).collect();
        assert_eq!(again, [2, 4, 5]);
        assert_eq!(resume.unconfirmed(), 3);
    }

    #[test]
    fn an_alert_sent_again_is_dropped_until_a_checkpoint_passes_it() {
        let mut resume = Resume::default();
        assert_eq!(resume.received(&alert("a", "hot", 1, 7)), Received::New);
        assert_eq!(resume.received(&alert("a", "hot", 1, 7)), Received::Duplicate);
        // Another state, sensor or seq is another alert.
        assert_eq!(resume.received(&alert("a", "hot", 2, 7)), Received::New);
        assert_eq!(resume.received(&alert("b", "hot", 1, 7)), Received::New);
        assert_eq!(resume.received(&alert("a", "hot", 1, 8)), Received::New);
        assert_eq!(resume.duplicates, 1);
        // Without a seq, each alert is new (no checkpoint would ever clear it).
        assert_eq!(resume.received(&alert("a", "hot", 1, 0)), Received::New);
        assert_eq!(resume.received(&alert("a", "hot", 1, 0)), Received::New);
        // A checkpoint at 8 forgets seq 7 (it cannot come again) and keeps 8 (absence may repeat it).
        resume.received(&alert("a", CHECKPOINT, 1, 8));
        assert_eq!(resume.received(&alert("a", "hot", 1, 8)), Received::Duplicate);
        assert_eq!(resume.shown["a"].len(), 1);
    }
}
