//! The server's clock: where every time the server hands the engine comes from (a reading's receive time, absence
//! deadlines, the time of reload alerts). Production reads the system clock; tests and simulations use a
//! [`ManualClock`] they advance, so absence, `for` durations and reload are exact and need no sleep. Transport
//! timers (HTTP/2 keepalive on real sockets) stay on real time.
//!
//! A stream loop waits for its next absence deadline with an [`Alarm`], which sleeps on the runtime's timer for the
//! system clock (one `Sleep`, reset only when the deadline changes) and wakes on every advance of a manual clock.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
    time::{Duration, SystemTime},
};

use tokio::{sync::watch, time::Sleep};

/// Where the server's time comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock that moves only when told to.
    Manual(ManualClock),
}

impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Clock::System, Clock::System) => true,
            (Clock::Manual(a), Clock::Manual(b)) => Arc::ptr_eq(&a.inner, &b.inner),
            _ => false,
        }
    }
}

impl Eq for Clock {}

impl Clock {
    /// The current time.
    pub fn now(&self) -> SystemTime {
        match self {
            // The one wall-clock read of the server (tests/tidy.rs keeps it here, with the Stopwatch's).
            Clock::System => SystemTime::now(),
            Clock::Manual(manual) => manual.now(),
        }
    }

    /// Completes when this clock reaches `deadline`.
    pub async fn sleep_until(&self, deadline: SystemTime) {
        // The alarm first, as in the stream loop: an advance between the look at the clock and the wait is seen.
        let mut alarm = self.alarm();
        std::future::poll_fn(|cx| {
            loop {
                if self.now() >= deadline {
                    return Poll::Ready(());
                }
                std::task::ready!(alarm.poll_until(self, deadline, cx));
            }
        })
        .await;
    }

    /// An alarm on this clock, for one waiter.
    pub(crate) fn alarm(&self) -> Alarm {
        match self {
            Clock::System => Alarm::System { sleep: Box::pin(tokio::time::sleep(Duration::ZERO)), at: None },
            Clock::Manual(manual) => Alarm::Manual(manual.changed()),
        }
    }
}

/// Measures how long something took on the monotonic clock, for metrics (the handling time of an RPC, a sampled
/// evaluation). What it measures never reaches the engine, which gets its time from [`Clock`].
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts measuring.
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    /// Seconds since the start.
    pub fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// When an operational timer set now for `after` fires, on the runtime's timer: a sink's resend or file age, a flush
/// deadline. Such timers pace work outside the engine and never reach it as time; a test pauses and advances them
/// with Tokio's own test clock.
pub fn timer_deadline(after: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + after
}

/// A clock for tests and simulations: starts at a given time and moves only by [`ManualClock::advance`], waking
/// every stream that waits on it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    /// Nanoseconds since the Unix epoch: one atomic load per read.
    nanos: AtomicU64,
    /// Ticks on every advance, to wake waiters.
    ticks: watch::Sender<()>,
}

impl ManualClock {
    /// A clock standing at `start` (at or after the Unix epoch, within 584 years of it).
    pub fn new(start: SystemTime) -> Self {
        let nanos = start.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let inner = ManualInner {
            nanos: AtomicU64::new(u64::try_from(nanos).unwrap_or(u64::MAX)),
            ticks: watch::channel(()).0,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The clock's time.
    pub fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` and wakes everything waiting on it.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Only one advancer at a time matters for tests; fetch_update keeps concurrent advances additive.
        let _ = self.inner.nanos.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_add(by)));
        self.inner.ticks.send_replace(());
    }

    /// A future that completes on the next advance.
    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut ticks = self.inner.ticks.subscribe();
        Box::pin(async move {
            // The sender lives as long as this receiver's clock: it never closes while waited on.
            let _ = ticks.changed().await;
        })
    }
}

/// A stream loop's wait for its next absence deadline.
pub(crate) enum Alarm {
    /// A runtime timer, made once per stream and reset only when the deadline changes.
    System {
        sleep: Pin<Box<Sleep>>,
        /// The deadline the timer is set for.
        at: Option<SystemTime>,
    },
    /// Wakes on every advance of a manual clock; the caller compares the time with its deadline. Polled on every
    /// wait (a manual clock's advances leave no atomic for the caller to read).
    Manual(Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl Alarm {
    /// Ready when `deadline` may have come (the caller checks the clock: a ready alarm is a reason to look, not a
    /// promise).
    pub(crate) fn poll_until(&mut self, clock: &Clock, deadline: SystemTime, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Alarm::System { sleep, at } => {
                if *at != Some(deadline) {
                    let wait = deadline.duration_since(clock.now()).unwrap_or_default();
                    sleep.as_mut().reset(tokio::time::Instant::now() + wait);
                    *at = Some(deadline);
                }
                let fired = sleep.as_mut().poll(cx);
                if fired.is_ready() {
                    // Set again from the wall clock on the next poll, should the two clocks disagree.
                    *at = None;
                }
                fired
            }
            Alarm::Manual(tick) => {
                let fired = tick.as_mut().poll(cx);
                if fired.is_ready()
                    && let Clock::Manual(manual) = clock
                {
                    *tick = manual.changed();
                }
                fired
            }
        }
    }
}

/// A wake-up future polled only when polling can tell something new: once after it is made, then again only if the
/// task's waker changed. Its completion must also be visible to the caller by other means (an atomic the caller
/// reads on every pass), so a poll skipped while it is registered loses nothing; skipping saves the lock that a
/// registered `Notified` takes on every poll.
pub(crate) struct Armed {
    wait: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// The waker the future holds, once polled.
    waker: Option<Waker>,
}

impl Armed {
    /// Arms `wait`.
    pub(crate) fn new(wait: Pin<Box<dyn Future<Output = ()> + Send>>) -> Self {
        Self { wait, waker: None }
    }

    /// Polls the future unless it already holds this task's waker.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let polled = self.wait.as_mut().poll(cx);
        self.waker = polled.is_pending().then(|| cx.waker().clone());
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Clock::Manual(ManualClock::new(start));
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now(), start);
        let Clock::Manual(manual) = &clock else { unreachable!() };
        manual.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), start + Duration::from_millis(1500));
        assert_eq!(clock, Clock::Manual(manual.clone()));
        assert_ne!(clock, Clock::Manual(ManualClock::new(start)));
        assert_ne!(clock, Clock::System);
    }

    #[tokio::test]
    async fn a_manual_alarm_wakes_on_an_advance() {
        let manual = ManualClock::new(SystemTime::UNIX_EPOCH);
        let clock = Clock::Manual(manual.clone());
        let mut alarm = clock.alarm();
        let deadline = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let waiting = std::future::poll_fn(|cx| alarm.poll_until(&clock, deadline, cx));
        let advance = async {
            tokio::task::yield_now().await;
            manual.advance(Duration::from_secs(10));
        };
        let ((), ()) = tokio::join!(waiting, advance);
        assert!(clock.now() >= deadline);
    }
}
