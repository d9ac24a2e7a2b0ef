//! Alerts whose stream ended while they fired. No reading of that stream will resolve them, so the sinks would hold
//! them firing for ever (Alertmanager's would re-send them every interval). The sink layer keeps each for
//! `--stale-after` on the server's clock, then hands the sinks its RESOLVED, marked stale, unless a stream has fired
//! the same rule for the same sensor meanwhile (that stream owns it now).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use alertstream_engine::Alert;
use metrics::{Counter, Gauge};
use tokio::sync::{mpsc, watch};

use super::SinkSet;
use crate::clock::Clock;

/// Notices a stale tracker holds before it drops the next (counted).
const NOTICES: usize = 4096;

/// What the tracker learns from the streams.
#[derive(Debug)]
enum Notice {
    /// A stream ended; these fired in it, each as the RESOLVED it would have ended with, stamped when it ended.
    Ended(Vec<Alert>),
    /// A stream fired `rule` for `sensor_id`.
    Fired { sensor_id: String, rule: Arc<str> },
}

/// The streams' way to the tracker.
#[derive(Debug, Clone)]
pub(super) struct StaleTracker {
    notices: mpsc::Sender<Notice>,
    /// Alerts waiting to go stale: while there are none, a FIRING alert needs no notice.
    waiting: Arc<AtomicUsize>,
    /// `alertstream_sink_stale_notices_dropped_total`.
    dropped: Counter,
}

impl StaleTracker {
    /// Starts the tracker's task: alerts go stale `after` their stream ended on `clock`, and then go to the sinks
    /// `live` holds then.
    pub(super) fn start(
        live: watch::Receiver<Arc<SinkSet>>,
        clock: Clock,
        after: Duration,
        (dropped, gauge): (Counter, Gauge),
    ) -> Self {
        let (notices, inbox) = mpsc::channel(NOTICES);
        let waiting = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(inbox, live, clock, after, (Arc::clone(&waiting), gauge)));
        Self { notices, waiting, dropped }
    }

    /// A stream ended while `alerts` fired.
    pub(super) fn ended(&self, alerts: Vec<Alert>) {
        let count = alerts.len() as u64;
        // Counted at once, so that a stream firing one of them again before the tracker has read this says so.
        self.waiting.fetch_add(alerts.len(), Ordering::Relaxed);
        if self.notices.try_send(Notice::Ended(alerts)).is_err() {
            self.dropped.increment(count);
            tracing::warn!(
                alerts = count,
                "Stale tracker full: alerts of an ended stream will not be resolved as stale."
            );
        }
    }

    /// A stream fired `rule` for `sensor_id`: told only while some alert waits to go stale.
    pub(super) fn fired(&self, alert: &Alert) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let notice = Notice::Fired { sensor_id: alert.sensor_id.clone(), rule: Arc::clone(&alert.rule) };
        if self.notices.try_send(notice).is_err() {
            self.dropped.increment(1);
            tracing::warn!("Stale tracker full: a firing alert may be resolved as stale.");
        }
    }
}

type Key = (String, Arc<str>);

async fn run(
    mut inbox: mpsc::Receiver<Notice>,
    live: watch::Receiver<Arc<SinkSet>>,
    clock: Clock,
    after: Duration,
    (waiting_count, gauge): (Arc<AtomicUsize>, Gauge),
) {
    // Each waiting alert, and the alerts by when they go stale (with a counter, for alerts due at one time).
    let mut waiting: HashMap<Key, ((SystemTime, u64), Alert)> = HashMap::new();
    let mut due: BTreeMap<(SystemTime, u64), Key> = BTreeMap::new();
    let mut counter = 0u64;
    loop {
        let next = due.first_key_value().map(|((at, _), _)| *at);
        tokio::select! {
            notice = inbox.recv() => match notice {
                None => break,
                Some(Notice::Ended(alerts)) => {
                    for alert in alerts {
                        counter += 1;
                        let at = (alert.time + after, counter);
                        let key = (alert.sensor_id.clone(), Arc::clone(&alert.rule));
                        if let Some((old, _)) = waiting.insert(key.clone(), (at, alert)) {
                            due.remove(&old);
                        }
                        due.insert(at, key);
                    }
                }
                Some(Notice::Fired { sensor_id, rule }) => {
                    if let Some((at, _)) = waiting.remove(&(sensor_id, rule)) {
                        due.remove(&at);
                    }
                }
            },
            () = sleep_until(&clock, next) => {
                let now = clock.now();
                let sinks = Arc::clone(&live.borrow());
                while let Some(entry) = due.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    if let Some((_, mut alert)) = waiting.remove(&key) {
                        alert.time = now;
                        sinks.offer_stale(&alert);
                    }
                }
            }
        }
        waiting_count.store(waiting.len(), Ordering::Relaxed);
        gauge.set(waiting.len() as f64);
    }
    if !waiting.is_empty() {
        tracing::info!(alerts = waiting.len(), "Alerts of ended streams still firing at shutdown were not resolved.");
    }
}

async fn sleep_until(clock: &Clock, at: Option<SystemTime>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}
