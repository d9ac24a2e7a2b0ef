//! What one `Stream` call counts: readings, alerts by rule and state, invalid and late readings, its sensors, and a
//! sample of evaluation times. Counted in the stream's own fields (no shared write per reading) and added to the
//! shared metrics every [`FLUSH_EVERY`] readings and when the stream ends.

use std::sync::Arc;

use alertstream_engine::{Alert, AlertState, INVALID_READING, LATE_READING};

use super::{Inner, Telemetry, label};

/// Readings between two flushes of a stream's counts into the shared metrics.
pub const FLUSH_EVERY: u32 = 1024;
/// One reading in this many has its evaluation timed.
pub const SAMPLE_EVERY: u32 = 64;

/// One stream's counts since its last flush. Counting is a no-op when metrics are off.
pub struct StreamMetrics {
    /// The shared metrics; `None` when metrics are off or the stream has ended.
    inner: Option<Arc<Inner>>,
    readings: u64,
    /// Readings a resuming client sent again and the stream skipped.
    resent: u64,
    /// Alerts by rule (the stream's own `Arc` of the name, compared by pointer first) and state.
    alerts: Vec<(Arc<str>, AlertState, u64)>,
    /// Readings until the next flush.
    until_flush: u32,
    /// Readings until the next timed evaluation.
    until_sample: u32,
    /// The sensor count last added to `alertstream_active_sensors`.
    sensors_reported: usize,
}

impl StreamMetrics {
    /// The counts of a new stream, counted in `alertstream_active_streams` until dropped.
    pub fn new(telemetry: &Telemetry) -> Self {
        let inner = telemetry.inner.clone();
        if let Some(inner) = &inner {
            inner.active_streams.increment(1);
        }
        Self {
            inner,
            readings: 0,
            resent: 0,
            alerts: Vec::new(),
            until_flush: FLUSH_EVERY,
            until_sample: SAMPLE_EVERY,
            sensors_reported: 0,
        }
    }

    /// Counts a reading received; `true` when its evaluation is to be timed. Every [`FLUSH_EVERY`] readings, adds
    /// the counts to the shared metrics, with `sensors`, the stream's sensor count now.
    #[inline]
    pub fn reading(&mut self, sensors: usize) -> bool {
        if self.inner.is_none() {
            return false;
        }
        self.readings += 1;
        self.until_flush -= 1;
        if self.until_flush == 0 {
            self.flush(sensors);
        }
        self.until_sample -= 1;
        if self.until_sample == 0 {
            self.until_sample = SAMPLE_EVERY;
            return true;
        }
        false
    }

    /// Records how long a timed evaluation took.
    pub fn evaluation(&self, seconds: f64) {
        if let Some(inner) = &self.inner {
            inner.evaluation.record(seconds);
        }
    }

    /// Counts a reading a resuming client sent again, which its sensor had applied: skipped.
    pub fn resent(&mut self) {
        self.resent += 1;
    }

    /// Counts an alert sent.
    #[inline]
    pub fn alert(&mut self, alert: &Alert) {
        if self.inner.is_none() {
            return;
        }
        let found = self.alerts.iter_mut().find(|(rule, state, _)| {
            *state == alert.state && (Arc::ptr_eq(rule, &alert.rule) || **rule == *alert.rule)
        });
        match found {
            Some((_, _, count)) => *count += 1,
            None => self.alerts.push((Arc::clone(&alert.rule), alert.state, 1)),
        }
    }

    /// Adds the counts since the last flush to the shared metrics.
    pub fn flush(&mut self, sensors: usize) {
        self.until_flush = FLUSH_EVERY;
        let Some(inner) = &self.inner else { return };
        inner.readings.increment(std::mem::take(&mut self.readings));
        let resent = std::mem::take(&mut self.resent);
        if resent > 0 {
            inner.counter("alertstream_readings_resent_total", Vec::new()).increment(resent);
        }
        for (rule, state, count) in &mut self.alerts {
            let count = std::mem::take(count);
            if count == 0 {
                continue;
            }
            match &**rule {
                INVALID_READING => inner.invalid_readings.increment(count),
                LATE_READING => inner.late_readings.increment(count),
                _ => {}
            }
            let labels = vec![label("rule", rule.to_string()), label("state", state.as_str())];
            inner.counter("alertstream_alerts_total", labels).increment(count);
        }
        // Rules that fired once stay in the list: a stream has few, and it saves a push when they fire again.
        let sensors_now = sensors as f64;
        let reported = self.sensors_reported as f64;
        inner.active_sensors.increment(sensors_now - reported);
        self.sensors_reported = sensors;
    }

    /// Flushes what is left and stops counting the stream as open: its sensors leave the gauge with it.
    pub fn end(&mut self, sensors: usize) {
        self.flush(sensors);
        if let Some(inner) = self.inner.take() {
            inner.active_sensors.decrement(self.sensors_reported as f64);
            inner.active_streams.decrement(1);
        }
    }
}

impl Drop for StreamMetrics {
    fn drop(&mut self) {
        // A stream dropped without ending (its client went away): what it counted still counts.
        let sensors = self.sensors_reported;
        self.end(sensors);
    }
}
