//! The live web view's hub: what the streams tell the browsers watching `/events`, and nothing when none watches.
//!
//! - A stream checks [`ViewHub::watched`] (one relaxed atomic load) per reading, and only while someone watches
//!   does it publish each reading and each alert it sends, serialised once, into a bounded broadcast channel.
//! - A page that opens subscribes, then asks every stream for a snapshot (a `watch` the stream loops look at as
//!   they look at new rules): each publishes its sensors and what fires for them, and the page takes it from
//!   there.
//! - The channel never waits for a browser: one that falls [`CAPACITY`] events behind is dropped (its
//!   EventSource reconnects and starts again from a snapshot).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

/// Events a watcher may fall behind by before it is dropped.
pub const CAPACITY: usize = 4096;

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
    events: broadcast::Sender<Arc<str>>,
    snapshots: watch::Sender<u64>,
}

impl Default for ViewHub {
    fn default() -> Self {
        Self::new()
    }
}

impl ViewHub {
    /// A hub nobody watches yet.
    pub fn new() -> Self {
        let inner = Inner {
            watchers: AtomicUsize::new(0),
            events: broadcast::channel(CAPACITY).0,
            snapshots: watch::channel(0).0,
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

    /// What the stream loops watch for snapshot requests.
    pub fn snapshot_requests(&self) -> watch::Receiver<u64> {
        self.inner.snapshots.subscribe()
    }

    /// A new watcher: subscribed first, then every stream is asked for a snapshot, so none is missed.
    pub fn watch(&self) -> Watcher {
        let events = self.inner.events.subscribe();
        self.inner.watchers.fetch_add(1, Ordering::Relaxed);
        self.inner.snapshots.send_modify(|generation| *generation += 1);
        Watcher { events, hub: Arc::clone(&self.inner) }
    }
}

/// One browser's subscription; it stops counting as a watcher when dropped.
#[derive(Debug)]
pub struct Watcher {
    /// The events, JSON each.
    pub events: broadcast::Receiver<Arc<str>>,
    hub: Arc<Inner>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_watched_events_are_sent_and_a_watcher_asks_for_a_snapshot() {
        let hub = ViewHub::new();
        let mut requests = hub.snapshot_requests();
        assert!(!hub.watched());
        let watcher = hub.watch();
        assert!(hub.watched());
        assert!(requests.has_changed().unwrap(), "a new watcher asks the streams for a snapshot");
        let mut events = watcher.events.resubscribe();
        hub.publish(&ViewEvent::Firing { sensor_id: "s", rule: "hot", severity: "warning" });
        let json = events.recv().await.unwrap();
        assert_eq!(&*json, r#"{"type":"firing","sensor_id":"s","rule":"hot","severity":"warning"}"#);
        drop(watcher);
        assert!(!hub.watched());
        requests.mark_unchanged();
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_so_and_the_sender_never_waits() {
        let hub = ViewHub::new();
        let mut watcher = hub.watch();
        for seq in 0..(CAPACITY as u64 + 10) {
            hub.publish(&ViewEvent::Sensor { sensor_id: "s", time: None, seq });
        }
        assert!(matches!(watcher.events.recv().await, Err(broadcast::error::RecvError::Lagged(10))));
    }
}
