//! Durable sensor state (`--state-dir`): each sensor's state (the engine's [snapshot](RuleSet::snapshot) of its
//! windows, detectors and firing rules) saved when its stream ends, shutdown included, and every
//! `--state-save-interval` while it is open; and restored when the sensor's next stream brings its first reading,
//! so that a restart neither re-learns nor re-fires. Without a store, state lives and dies with its stream.
//!
//! [`SensorStates`] is what the streams hold: a load is one read of the store, on the stream's own task, once per
//! sensor and stream; saves go through a bounded queue to one writer thread, never waited on, but the snapshots are
//! taken on the stream's task (a stream of 100,000 sensors pauses about 0.1 s for them with the default rules, and
//! about 2 s with windows and a detector: docs/DEPLOYMENT.md). A store that fails never stops a stream: the failure
//! is counted (`alertstream_state_loads_total`, `alertstream_state_saves_total` by result) and logged, and the
//! sensor starts fresh or keeps its older saved state.

mod embedded;
mod nats;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use alertstream_engine::{RuleSet, StreamState};
pub use embedded::EmbeddedStore;
pub use nats::{NATS_BUCKET, NatsStore};

use crate::telemetry::{Telemetry, label};

/// Where sensor states are kept between streams.
pub trait StateStore: Send + Sync + 'static {
    /// The saved state of `sensor_id`, if any (and not older than the store keeps).
    ///
    /// # Errors
    /// The store cannot be read.
    fn load(&self, sensor_id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Saves each sensor's state, replacing what was saved for it, all or nothing.
    ///
    /// # Errors
    /// The store cannot be written (a full disk, a damaged file).
    fn save(&self, states: &[(String, Vec<u8>)]) -> Result<(), StoreError>;
}

/// Why a store could not load or save.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Sensor ids and their snapshots, saved together.
pub type Batch = Vec<(String, Vec<u8>)>;

/// Saves waiting for the writer, at most: beyond, a stream's saves are dropped and counted.
const SAVE_QUEUE: usize = 1_024;

/// The streams' handle on the store: off by default (state lives with its stream). Cheap to clone.
#[derive(Clone, Default)]
pub struct SensorStates {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// The store; taken (closing it) by [`SensorStates::finish`], after which nothing loads or saves.
    store: std::sync::RwLock<Option<Arc<dyn StateStore>>>,
    /// The writer's queue; taken (closing it) by [`SensorStates::finish`].
    saves: Mutex<Option<mpsc::SyncSender<Queued>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Saves queued and not yet committed, by sensor: a sensor that streams again at once restores from here, not
    /// from an older state in the store.
    pending: Mutex<HashMap<String, Pending>>,
    /// How often an open stream saves its sensors' states.
    save_interval: Duration,
    /// Which stream last took each sensor up (by [`StreamClaim`] number): only that stream saves the sensor, so an
    /// older stream of it (a client's half-dead connection, ended later) never overwrites the newer one's state.
    claims: Mutex<HashMap<String, u64>>,
    /// The number the next stream gets.
    next_claim: AtomicU64,
    /// The generation the next queued state gets.
    next_generation: AtomicU64,
    telemetry: Telemetry,
}

/// What a stream restores and saves its sensors under: the newest stream of a sensor owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamClaim(u64);

/// A batch on its way to the writer, each state with the generation it has in `pending`.
struct Queued {
    batch: Batch,
    generations: Vec<u64>,
}

/// A state queued for saving.
struct Pending {
    generation: u64,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SensorStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorStates").field("on", &self.inner.is_some()).finish()
    }
}

impl Inner {
    /// The store, while it is open.
    fn store(&self) -> Option<Arc<dyn StateStore>> {
        self.store.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.claims.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the queued states of `queued` that no later save has replaced: committed, or lost.
    fn settle(&self, queued: &Queued) {
        let mut pending = self.pending();
        for ((sensor_id, _), generation) in queued.batch.iter().zip(&queued.generations) {
            if pending.get(sensor_id).is_some_and(|p| p.generation == *generation) {
                pending.remove(sensor_id);
            }
        }
    }
}

impl SensorStates {
    /// Keeps sensor states in `store`, saving through a writer thread of its own, as streams end and every
    /// `save_interval` while they are open.
    ///
    /// # Errors
    /// The writer thread cannot be started.
    pub fn new(store: Arc<dyn StateStore>, save_interval: Duration, telemetry: Telemetry) -> std::io::Result<Self> {
        let (saves, queue) = mpsc::sync_channel::<Queued>(SAVE_QUEUE);
        let inner = Arc::new(Inner {
            store: std::sync::RwLock::new(Some(store)),
            saves: Mutex::new(Some(saves)),
            writer: Mutex::new(None),
            pending: Mutex::default(),
            save_interval,
            claims: Mutex::default(),
            next_claim: AtomicU64::new(1),
            next_generation: AtomicU64::new(0),
            telemetry,
        });
        // The writer holds only a weak handle, so that dropping the last `SensorStates` closes the store.
        let writer_inner = Arc::downgrade(&inner);
        let writer = std::thread::Builder::new().name("alertstream-state".to_owned()).spawn(move || {
            for queued in queue {
                let Some(inner) = writer_inner.upgrade() else { return };
                let result = match inner.store().map(|store| store.save(&queued.batch)) {
                    Some(Ok(())) => "saved",
                    None => "closed",
                    Some(Err(error)) => {
                        tracing::warn!(%error, sensors = queued.batch.len(), "Could not save sensor states; they are lost.");
                        "error"
                    }
                };
                inner.settle(&queued);
                let count = queued.batch.len() as u64;
                inner.telemetry.counter("alertstream_state_saves_total", vec![label("result", result)]).increment(count);
            }
        })?;
        *inner.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(writer);
        Ok(Self { inner: Some(inner) })
    }

    /// Whether a store keeps sensor states.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// How often an open stream saves its sensors' states (`None` without a store).
    pub fn save_interval(&self) -> Option<Duration> {
        self.inner.as_ref().map(|inner| inner.save_interval)
    }

    /// A new stream's claim: what it restores and saves sensors under.
    pub fn claim(&self) -> StreamClaim {
        StreamClaim(self.inner.as_ref().map_or(0, |inner| inner.next_claim.fetch_add(1, Ordering::Relaxed)))
    }

    /// Restores sensor `sensor_id` into `stream` (on `rules`, its claim `claim`) from the store, if it has the
    /// sensor's state: before the sensor's first reading in the stream. The stream takes the sensor up: from now on
    /// only it saves the sensor. Whatever fails, the sensor starts fresh. Whether it was restored.
    pub fn restore(
        &self,
        claim: StreamClaim,
        rules: &RuleSet,
        stream: &mut StreamState,
        sensor_id: &str,
        now: SystemTime,
    ) -> bool {
        let Some(inner) = &self.inner else { return false };
        inner.claims().insert(sensor_id.to_owned(), claim.0);
        let queued = inner.pending().get(sensor_id).map(|p| p.bytes.clone());
        let loaded = match (queued, inner.store()) {
            (Some(bytes), _) => Ok(Some(bytes)),
            (None, Some(store)) => store.load(sensor_id),
            (None, None) => Ok(None),
        };
        let (restored, result) = match loaded {
            Ok(Some(bytes)) => match rules.restore(stream, sensor_id, &bytes, now) {
                Ok(_) => (true, "restored"),
                Err(error) => {
                    tracing::warn!(sensor_id, %error, "A saved sensor state was not restored; the sensor starts fresh.");
                    (false, "refused")
                }
            },
            Ok(None) => (false, "none"),
            Err(error) => {
                tracing::warn!(sensor_id, %error, "Could not load a sensor's state; the sensor starts fresh.");
                (false, "error")
            }
        };
        inner.telemetry.counter("alertstream_state_loads_total", vec![label("result", result)]).increment(1);
        restored
    }

    /// Saves every sensor `stream` (on `rules`, its claim `claim`) tracks and no newer stream has taken up: now
    /// and then while the stream is open, and when it `ends` (which gives its sensors up). Never waits: with the
    /// writer's queue full, the states are dropped, counted and logged. A state queued is what the sensor's next
    /// stream restores, committed or not.
    pub fn save(&self, claim: StreamClaim, rules: &RuleSet, stream: &StreamState, ends: bool) {
        let Some(inner) = &self.inner else { return };
        if stream.sensor_count() == 0 {
            return;
        }
        // The sensors this stream owns, under the lock; their snapshots (which may take a while) outside it.
        let owned: Vec<&str> = {
            let claims = inner.claims();
            stream.sensors().map(|(id, _, _)| id).filter(|id| claims.get(*id) == Some(&claim.0)).collect()
        };
        let batch: Batch =
            owned.iter().filter_map(|&id| rules.snapshot(stream, id).map(|bytes| (id.to_owned(), bytes))).collect();
        if batch.is_empty() {
            return;
        }
        let generations: Vec<u64> = {
            let mut pending = inner.pending();
            batch
                .iter()
                .map(|(id, bytes)| {
                    let generation = inner.next_generation.fetch_add(1, Ordering::Relaxed);
                    pending.insert(id.clone(), Pending { generation, bytes: bytes.clone() });
                    generation
                })
                .collect()
        };
        // An ending stream gives its sensors up, once their last states are where the next stream looks first.
        if ends {
            let mut claims = inner.claims();
            for (id, _) in &batch {
                if claims.get(id) == Some(&claim.0) {
                    claims.remove(id);
                }
            }
        }
        let queued = Queued { batch, generations };
        let refused = match &*inner.saves.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(saves) => saves.try_send(queued).err().map(|e| match e {
                mpsc::TrySendError::Full(q) => (q, "queue_full"),
                mpsc::TrySendError::Disconnected(q) => (q, "closed"),
            }),
            None => Some((queued, "closed")),
        };
        if let Some((queued, why)) = refused {
            inner.settle(&queued);
            let count = queued.batch.len() as u64;
            tracing::warn!(
                sensors = count,
                why,
                "The state writer is behind or stopped: these sensor states are not saved."
            );
            inner.telemetry.counter("alertstream_state_saves_total", vec![label("result", why)]).increment(count);
        }
    }

    /// Closes the writer's queue and waits until it has saved what it holds: at shutdown, after the streams ended.
    pub async fn finish(&self) {
        let Some(inner) = &self.inner else { return };
        drop(inner.saves.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        let writer = inner.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        // Closed: a later server may open the same store (redb allows one process at a time).
        drop(inner.store.write().unwrap_or_else(std::sync::PoisonError::into_inner).take());
    }
}
