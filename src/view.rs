//! The live web view's hub: what the streams tell the browsers watching `/events`, and nothing when none watches.
//!
//! - A stream checks [`ViewHub::watched`] (one relaxed atomic load) per reading, and only while someone watches
//!   does it publish each reading and each alert it sends, serialised once, into a bounded broadcast channel.
//! - A page that opens subscribes, then asks every stream for a snapshot (a `watch` the stream loops look at as
//!   they look at new rules): each sends its sensors and what fires for them to that page alone, through the
//!   page's own bounded queue ([`SNAPSHOT_CAPACITY`]), so a large snapshot never pushes anyone off the shared
//!   channel, and the page takes it from there.
//! - The channel never waits for a browser: one that falls [`CAPACITY`] events behind is dropped (its
//!   EventSource reconnects and starts again from a snapshot).

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use metrics::Gauge;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

/// Events a watcher may fall behind by before it is dropped.
pub const CAPACITY: usize = 4096;
/// Events of one page's snapshot, over every stream: beyond it, the snapshot is cut short (the page fills in
/// from live events).
pub const SNAPSHOT_CAPACITY: usize = 65_536;
/// Snapshot requests kept for streams that have not answered yet; older ones are dropped.
const PENDING_REQUESTS: usize = 64;

/// What the view shows, as the JSON a page receives (`type` names the kind).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ViewEvent<'a> {
    /// A reading applied on some stream.
    Reading {
        /// The reading's sensor.
        sensor_id: &'a str,
        /// Its values.
        values: &'a alertstream_engine::Values,
        /// Its time, RFC 3339.
        time: String,
        /// Its `seq`.
        seq: u64,
    },
    /// An alert sent on some stream.
    Alert {
        /// The alert's sensor.
        sensor_id: &'a str,
        /// Its rule or event.
        rule: &'a str,
        /// `firing` or `resolved`.
        state: &'a str,
        /// `info`, `warning` or `critical`.
        severity: &'a str,
        /// Its message.
        message: &'a str,
        /// Its time, RFC 3339.
        time: String,
        /// The `seq` of the reading that caused it.
        seq: u64,
    },
    /// Part of a snapshot: a sensor a stream tracks.
    Sensor {
        /// Its id.
        sensor_id: &'a str,
        /// Its latest reading time, RFC 3339, if any.
        time: Option<String>,
        /// The `seq` of its last applied reading.
        seq: u64,
    },
    /// Part of a snapshot: a rule firing now for a sensor.
    Firing {
        /// The sensor.
        sensor_id: &'a str,
        /// The rule.
        rule: &'a str,
        /// The rule's severity.
        severity: &'a str,
    },
}

/// The hub every stream and every watcher shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ViewHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    watchers: AtomicUsize,
    /// `alertstream_view_watchers`.
    gauge: Gauge,
    events: broadcast::Sender<Arc<str>>,
    /// The number of the latest snapshot request: a change wakes the streams.
    snapshots: watch::Sender<u64>,
    /// The requests streams may still answer, by number, oldest first. Locked once per snapshot, never per
    /// reading.
    requests: Mutex<VecDeque<(u64, mpsc::Sender<Arc<str>>)>>,
}

impl Default for ViewHub {
    fn default() -> Self {
        Self::new(Gauge::noop())
    }
}

impl ViewHub {
    /// A hub nobody watches yet, counting its watchers in `gauge`.
    pub fn new(gauge: Gauge) -> Self {
        let inner = Inner {
            watchers: AtomicUsize::new(0),
            gauge,
            events: broadcast::channel(CAPACITY).0,
            snapshots: watch::channel(0).0,
            requests: Mutex::new(VecDeque::new()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Whether any browser watches: when not, streams publish nothing.
    #[inline]
    pub fn watched(&self) -> bool {
        self.inner.watchers.load(Ordering::Relaxed) > 0
    }

    /// Sends `event` to every watcher (serialised once; dropped when nobody watches).
    pub fn publish(&self, event: &ViewEvent<'_>) {
        if let Ok(json) = serde_json::to_string(event) {
            let _ = self.inner.events.send(Arc::from(json));
        }
    }

    /// What the stream loops watch for snapshot requests (the number of the latest).
    pub fn snapshot_requests(&self) -> watch::Receiver<u64> {
        self.inner.snapshots.subscribe()
    }

    /// Where to send a snapshot: every page that asked for one after request `served`, and the latest request's
    /// number (the caller's next `served`).
    pub fn snapshot_sinks(&self, served: u64) -> (u64, Vec<mpsc::Sender<Arc<str>>>) {
        let requests = self.inner.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let latest = requests.back().map_or(served, |(number, _)| *number);
        let sinks = requests.iter().filter(|(number, _)| *number > served).map(|(_, sink)| sink.clone()).collect();
        (latest, sinks)
    }

    /// A new watcher: subscribed first, then every stream is asked for a snapshot, so none is missed.
    pub fn watch(&self) -> Watcher {
        let events = self.inner.events.subscribe();
        let (sink, snapshot) = mpsc::channel(SNAPSHOT_CAPACITY);
        self.inner.watchers.fetch_add(1, Ordering::Relaxed);
        self.inner.gauge.increment(1);
        {
            let mut requests = self.inner.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            requests.retain(|(_, sink)| !sink.is_closed());
            while requests.len() >= PENDING_REQUESTS {
                requests.pop_front();
            }
            // Numbered under the lock, so the numbers rise in the queue's order.
            let number = *self.inner.snapshots.borrow() + 1;
            requests.push_back((number, sink));
            self.inner.snapshots.send_replace(number);
        }
        Watcher { events, snapshot, hub: Arc::clone(&self.inner) }
    }
}

/// Sends one snapshot event to every page in `sinks`, serialised once; a page whose snapshot queue is full gets a
/// shorter snapshot.
pub fn send_snapshot(sinks: &[mpsc::Sender<Arc<str>>], event: &ViewEvent<'_>) {
    if let Ok(json) = serde_json::to_string(event) {
        let json: Arc<str> = Arc::from(json);
        for sink in sinks {
            let _ = sink.try_send(Arc::clone(&json));
        }
    }
}

/// One browser's subscription; it stops counting as a watcher when dropped.
#[derive(Debug)]
pub struct Watcher {
    /// The live events, JSON each.
    pub events: broadcast::Receiver<Arc<str>>,
    /// This page's snapshot, from every stream, JSON each: to be taken before the live events, which a stream
    /// publishes only after its snapshot.
    pub snapshot: mpsc::Receiver<Arc<str>>,
    hub: Arc<Inner>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.watchers.fetch_sub(1, Ordering::Relaxed);
        self.hub.gauge.decrement(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_watched_events_are_sent_and_each_watcher_gets_its_own_snapshot() {
        let hub = ViewHub::default();
        let mut requests = hub.snapshot_requests();
        assert!(!hub.watched());
        let mut first = hub.watch();
        let mut second = hub.watch();
        assert!(hub.watched());
        assert!(requests.has_changed().unwrap(), "a new watcher asks the streams for a snapshot");
        // A stream that served nothing yet answers both; one that served the first answers the second alone.
        let (latest, sinks) = hub.snapshot_sinks(0);
        assert_eq!((latest, sinks.len()), (2, 2));
        send_snapshot(&sinks, &ViewEvent::Firing { sensor_id: "s", rule: "hot", severity: "warning" });
        let (_, later) = hub.snapshot_sinks(1);
        send_snapshot(&later, &ViewEvent::Sensor { sensor_id: "t", time: None, seq: 3 });
        let json = first.snapshot.recv().await.unwrap();
        assert_eq!(&*json, r#"{"type":"firing","sensor_id":"s","rule":"hot","severity":"warning"}"#);
        assert!(first.snapshot.try_recv().is_err());
        second.snapshot.recv().await.unwrap();
        assert!(second.snapshot.recv().await.unwrap().contains(r#""sensor_id":"t""#));
        // Live events reach every watcher.
        hub.publish(&ViewEvent::Sensor { sensor_id: "u", time: None, seq: 1 });
        assert!(first.events.recv().await.unwrap().contains(r#""u""#));
        drop((first, second));
        assert!(!hub.watched());
        requests.mark_unchanged();
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_so_and_the_sender_never_waits() {
        let hub = ViewHub::default();
        let mut watcher = hub.watch();
        for seq in 0..(CAPACITY as u64 + 10) {
            hub.publish(&ViewEvent::Sensor { sensor_id: "s", time: None, seq });
        }
        assert!(matches!(watcher.events.recv().await, Err(broadcast::error::RecvError::Lagged(10))));
    }
}
