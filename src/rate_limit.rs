//! `--max-readings-per-second`: one stream's rate limit, a token bucket kept as the generic cell rate algorithm
//! (one time per stream, no refill task), on the server's [`crate::clock::Clock`].
//!
//! The bucket holds one second's worth of readings and refills continuously: a stream may send `rate` readings at
//! once, then `rate` a second on average. A reading over the rate is not applied; the stream loop answers it with
//! the in-band `rate_limited` event.

use std::time::{Duration, SystemTime};

/// One stream's rate limit.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Readings a second.
    rate: u32,
    /// The time between two readings at the steady rate.
    interval: Duration,
    /// How far ahead of now the next reading's theoretical arrival time may be: the bucket's depth minus one.
    tolerance: Duration,
    /// The theoretical arrival time of the next reading at the steady rate: the bucket is full when it is at or
    /// before now.
    next_due: Option<SystemTime>,
}

impl RateLimit {
    /// A limit of `rate` readings a second, or `None` for 0 (off).
    pub fn per_second(rate: u32) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let interval = Duration::from_secs(1) / rate;
        Some(Self { rate, interval, tolerance: interval * (rate - 1), next_due: None })
    }

    /// The limit, in readings a second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Whether a reading received at `now` is within the rate; if it is, it is counted.
    pub fn admit(&mut self, now: SystemTime) -> bool {
        let next_due = self.next_due.map_or(now, |due| due.max(now));
        let ahead = next_due.duration_since(now).unwrap_or_default();
        if ahead > self.tolerance + self.interval {
            // Only a clock that went back gets here: count from now rather than refuse until it catches up.
            self.next_due = Some(now + self.tolerance);
            return false;
        }
        if ahead > self.tolerance {
            return false;
        }
        self.next_due = Some(next_due + self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_millis(millis)
    }

    fn admitted(limit: &mut RateLimit, now: SystemTime, readings: usize) -> usize {
        (0..readings).filter(|_| limit.admit(now)).count()
    }

    #[test]
    fn zero_is_off() {
        assert!(RateLimit::per_second(0).is_none());
    }

    #[test]
    fn a_full_bucket_admits_one_second_of_readings_at_once_then_none() {
        let mut limit = RateLimit::per_second(5).unwrap();
        assert_eq!(admitted(&mut limit, at(0), 8), 5);
        assert!(!limit.admit(at(0)));
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let mut limit = RateLimit::per_second(5).unwrap();
        assert_eq!(admitted(&mut limit, at(0), 5), 5);
        // One interval (200 ms) later, one more.
        assert_eq!(admitted(&mut limit, at(200), 3), 1);
        // A full second after that, the bucket is full again.
        assert_eq!(admitted(&mut limit, at(1200), 9), 5);
    }

    #[test]
    fn a_steady_stream_at_the_rate_is_never_refused() {
        let mut limit = RateLimit::per_second(10).unwrap();
        assert!((0..1000).all(|i| limit.admit(at(i * 100))));
    }

    #[test]
    fn a_steady_stream_over_the_rate_gets_the_rate() {
        let mut limit = RateLimit::per_second(10).unwrap();
        // 20 a second for 10 seconds: the first second's burst (10) plus 10 a second after it.
        let admitted = (0..200).filter(|i| limit.admit(at(i * 50))).count();
        assert!((100..=110).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_clock_that_goes_back_does_not_block_the_stream_for_long() {
        let mut limit = RateLimit::per_second(2).unwrap();
        assert_eq!(admitted(&mut limit, at(3_600_000), 2), 2);
        // The clock goes back an hour: within a second, readings are admitted again.
        assert!(!limit.admit(at(0)));
        assert!(limit.admit(at(1000)));
    }
}
