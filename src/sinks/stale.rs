//! Alerts whose stream ended while they fired. No reading of that stream will resolve them, so the sinks would hold
//! them firing for ever (Alertmanager's would re-send them every interval). The sink layer keeps each for
//! `--stale-after` on the server's clock, then hands the sinks its RESOLVED, marked stale, unless a stream has fired
//! the same rule for the same sensor meanwhile (that stream owns it now), or, with a state store replicas share,
//! another replica has taken the sensor over (its sinks have the alert now: it re-announced it).

use std::{
    collections::{BTreeMap, HashMap},
    hash::BuildHasher as _,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use alertstream_engine::Alert;
use metrics::{Counter, Gauge};
use tokio::sync::{mpsc, watch};

use super::SinkSet;
use crate::{clock::Clock, state_store::SensorStates};

/// Notices a stale tracker holds before it drops the next (counted).
const NOTICES: usize = 4096;
/// Slots of the filter that tells a FIRING alert whether its sensor and rule may be waiting.
const SLOTS: usize = 4096;

/// What the tracker learns from the streams.
#[derive(Debug)]
enum Notice {
    /// A stream ended; these fired in it, each as the RESOLVED it would have ended with, stamped when it ended.
    Ended(Vec<Alert>),
    /// A stream fired `rule` for `sensor_id`.
    Fired { sensor_id: String, rule: Arc<str> },
}

/// A counting filter over (sensor, rule): a slot per hash, counting the waiting alerts that fall in it. A FIRING
/// alert whose slot is 0 needs no notice, so a stream pays one hash and one atomic load per FIRING alert, however
/// many alerts wait.
#[derive(Debug)]
struct Filter {
    slots: Box<[AtomicU32]>,
    hasher: foldhash::fast::FixedState,
}

impl Filter {
    fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0),
        }
    }

    fn slot(&self, sensor_id: &str, rule: &str) -> &AtomicU32 {
        let hash = self.hasher.hash_one((sensor_id, rule));
        &self.slots[(hash as usize) % SLOTS]
    }

    fn add(&self, sensor_id: &str, rule: &str) {
        self.slot(sensor_id, rule).fetch_add(1, Ordering::Relaxed);
    }

    fn remove(&self, sensor_id: &str, rule: &str) {
        self.slot(sensor_id, rule).fetch_sub(1, Ordering::Relaxed);
    }

    fn may_hold(&self, sensor_id: &str, rule: &str) -> bool {
        self.slot(sensor_id, rule).load(Ordering::Relaxed) > 0
    }
}

/// The streams' way to the tracker.
#[derive(Debug, Clone)]
pub(super) struct StaleTracker {
    notices: mpsc::Sender<Notice>,
    /// Which sensors and rules may have alerts waiting to go stale.
    waiting: Arc<Filter>,
    /// `alertstream_sink_stale_notices_dropped_total`.
    dropped: Counter,
    /// Notices dropped so far: the log says so at 1, 2, 4, 8, … of them.
    dropped_so_far: Arc<AtomicU64>,
}

impl StaleTracker {
    /// Starts the tracker's task: alerts go stale `after` their stream ended on `clock`, and then go to the sinks
    /// `live` holds then, unless `states` says another replica holds their sensor.
    pub(super) fn start(
        live: watch::Receiver<Arc<SinkSet>>,
        (clock, after): (Clock, Duration),
        states: SensorStates,
        (dropped, gauge): (Counter, Gauge),
    ) -> Self {
        let (notices, inbox) = mpsc::channel(NOTICES);
        let waiting = Arc::new(Filter::new());
        tokio::spawn(run(inbox, live, (clock, after), states, (Arc::clone(&waiting), gauge)));
        Self { notices, waiting, dropped, dropped_so_far: Arc::default() }
    }

    /// A stream ended while `alerts` fired.
    pub(super) fn ended(&self, alerts: Vec<Alert>) {
        // Counted at once, so that a stream firing one of them again before the tracker has read this says so.
        for alert in &alerts {
            self.waiting.add(&alert.sensor_id, &alert.rule);
        }
        if let Err(refused) = self.notices.try_send(Notice::Ended(alerts)) {
            let (mpsc::error::TrySendError::Full(notice) | mpsc::error::TrySendError::Closed(notice)) = refused;
            if let Notice::Ended(alerts) = notice {
                for alert in &alerts {
                    self.waiting.remove(&alert.sensor_id, &alert.rule);
                }
                self.lost(alerts.len() as u64, "alerts of ended streams will not be resolved as stale");
            }
        }
    }

    /// A stream fired `alert`: the tracker is told when the filter says it may hold that sensor and rule.
    pub(super) fn fired(&self, alert: &Alert) {
        self.firing(&alert.sensor_id, &alert.rule);
    }

    /// A stream fires `rule` for `sensor_id` (an alert, or a firing state it restored): the tracker is told when the
    /// filter says it may hold them.
    pub(super) fn firing(&self, sensor_id: &str, rule: &Arc<str>) {
        if !self.waiting.may_hold(sensor_id, rule) {
            return;
        }
        let notice = Notice::Fired { sensor_id: sensor_id.to_owned(), rule: Arc::clone(rule) };
        if self.notices.try_send(notice).is_err() {
            self.lost(1, "a firing alert may be resolved as stale");
        }
    }

    /// Counts and logs notices the tracker could not take.
    fn lost(&self, count: u64, what: &str) {
        self.dropped.increment(count);
        let before = self.dropped_so_far.fetch_add(count, Ordering::Relaxed);
        if before == 0 || (before + count).is_power_of_two() {
            tracing::warn!(dropped = before + count, "Stale tracker full: {what}.");
        }
    }
}

type Key = (String, Arc<str>);

async fn run(
    mut inbox: mpsc::Receiver<Notice>,
    live: watch::Receiver<Arc<SinkSet>>,
    (clock, after): (Clock, Duration),
    states: SensorStates,
    (filter, gauge): (Arc<Filter>, Gauge),
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
                        let key = (alert.sensor_id.to_string(), Arc::clone(&alert.rule));
                        if let Some((old, _)) = waiting.insert(key.clone(), (at, alert)) {
                            due.remove(&old);
                            filter.remove(&key.0, &key.1);
                        }
                        due.insert(at, key);
                    }
                }
                Some(Notice::Fired { sensor_id, rule }) => {
                    let key = (sensor_id, rule);
                    if let Some((at, _)) = waiting.remove(&key) {
                        due.remove(&at);
                        filter.remove(&key.0, &key.1);
                    }
                }
            },
            () = sleep_until(&clock, next) => {
                let now = clock.now();
                let mut stale = Vec::new();
                while let Some(entry) = due.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let key = entry.remove();
                    if let Some((_, mut alert)) = waiting.remove(&key) {
                        filter.remove(&key.0, &key.1);
                        alert.time = now;
                        stale.push(alert);
                    }
                }
                let stale = mine(&states, stale).await;
                let sinks = Arc::clone(&live.borrow());
                for alert in &stale {
                    sinks.offer_stale(alert);
                }
            }
        }
        gauge.set(waiting.len() as f64);
    }
    if !waiting.is_empty() {
        tracing::info!(alerts = waiting.len(), "Alerts of ended streams still firing at shutdown were not resolved.");
    }
}

/// The alerts of `stale` whose sensor no other replica has taken over: with a shared store, one read of it per
/// sensor (off the runtime's threads). A store that cannot say leaves the alert stale here, as without a shared
/// store: otherwise a sink that re-sends what fires (Alertmanager's) would hold it firing for good.
async fn mine(states: &SensorStates, stale: Vec<Alert>) -> Vec<Alert> {
    if stale.is_empty() || !states.is_shared() {
        return stale;
    }
    let states = states.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let mut taken_over: HashMap<String, bool> = HashMap::new();
        let (mine, taken): (Vec<Alert>, Vec<Alert>) = stale.into_iter().partition(|alert| {
            let taken = *taken_over
                .entry(alert.sensor_id.to_string())
                .or_insert_with(|| states.owned_elsewhere(&alert.sensor_id).unwrap_or(false));
            !taken
        });
        if !taken.is_empty() {
            tracing::info!(
                alerts = taken.len(),
                "Alerts of ended streams not resolved as stale: another replica has taken their sensors over."
            );
        }
        mine
    });
    checked.await.unwrap_or_default()
}

async fn sleep_until(clock: &Clock, at: Option<SystemTime>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}
