//! Durable sensor state (`--state-dir`): each sensor's state (the engine's [snapshot](RuleSet::snapshot) of its
//! windows, detectors and firing rules) saved when its stream ends, shutdown included, and every
//! `--state-save-interval` while it is open; and restored when the sensor's next stream brings its first reading,
//! so that a restart neither re-learns nor re-fires. Without a store, state lives and dies with its stream.
//!
//! [`SensorStates`] is what the streams hold: a load is one read of the store, on the stream's own task, once per
//! sensor and stream; saves go through a bounded queue to one writer thread, never waited on, but the snapshots are
//! taken on the stream's task (a stream of 100,000 sensors pauses about 0.1 s for them with the default rules, and
//! about 2 s with windows and a detector: docs/DEPLOYMENT.md). A store that fails never stops a stream: the failure
//! is counted (`alertstream_state_loads_total`, `alertstream_state_saves_total` by result) and logged; a sensor
//! whose load fails starts fresh, and a failed save is tried again (with a pause that doubles up to 30 s) until it
//! lands, a later save replaces it, or the server shuts down.

mod embedded;
mod nats;
mod value;

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

/// Where sensor states are kept between streams: values by sensor id, each with the store's revision of it, so
/// that a write can be conditional on what it replaces (compare-and-set).
pub trait StateStore: Send + Sync + 'static {
    /// The saved value of `sensor_id` and its revision, if any (and not older than the store keeps).
    ///
    /// # Errors
    /// The store cannot be read.
    fn load(&self, sensor_id: &str) -> Result<Option<Stored>, StoreError>;

    /// Writes each value whose sensor holds what its write [expects](Expect), all in one go where the store can; the
    /// rest are [`Written::Superseded`]. One answer per write, in order.
    ///
    /// # Errors
    /// The store cannot be written (a full disk, a damaged file, an unreachable server): nothing is known written.
    fn save(&self, writes: &[Write]) -> Result<Vec<Written>, StoreError>;

    /// Whether other processes write to the store too (replicas on one bucket). A sensor's new owner then writes
    /// its state back at once, so that the old owner's next save fails its compare-and-set.
    fn shared(&self) -> bool {
        false
    }
}

/// A value as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The value.
    pub value: Vec<u8>,
    /// The store's revision of it: a later write of the sensor has a greater one.
    pub revision: u64,
}

/// What a write expects the store to hold for its sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Anything: the sensor's load failed, so there is nothing to compare with (the last writer wins).
    Any,
    /// Nothing: the sensor had no saved state when this process took it up.
    Absent,
    /// This revision: the one this process loaded or last wrote.
    Revision(u64),
}

/// One sensor's value to write.
#[derive(Debug, Clone)]
pub struct Write {
    /// The sensor.
    pub sensor_id: String,
    /// Its value.
    pub value: Vec<u8>,
    /// What it replaces.
    pub expect: Expect,
}

/// What became of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Written, at this revision.
    Saved(u64),
    /// Not written: the store holds something else than expected (another process took the sensor over, or an
    /// earlier try of this write landed after all).
    Superseded,
    /// Not written: the store failed on it, or on a write before it in the batch (to be tried again).
    Failed,
}

/// Why a store could not load or save.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Saves waiting for the writer, at most: beyond, a stream's saves are dropped and counted.
const SAVE_QUEUE: usize = 1_024;
/// How many times a take-over loads and writes back a sensor whose value changes in between.
const TAKE_OVER_TRIES: usize = 3;
/// The first pause before a failed save is tried again; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between two tries of a failed save.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// The sensors (and the `seq` of each one's latest reading) whose states a save made durable; what a resuming
/// stream tells its client in `checkpoint` events.
pub type Durable = Vec<(String, u64)>;

/// The answer to a save a stream asked to hear about: the sensors it made durable (none when it failed).
pub type Committed = tokio::sync::oneshot::Receiver<Durable>;

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
    /// What this process knows of each sensor a stream holds or whose save is queued.
    records: Mutex<HashMap<String, Record>>,
    /// How often an open stream saves its sensors' states.
    save_interval: Duration,
    /// This process's name in the values it writes (random): a state written by another (a replica, or this
    /// server before a restart) is re-announced to the sinks when restored, and tells a sensor taken over.
    owner: u64,
    /// The number the next stream gets.
    next_claim: AtomicU64,
    /// The generation the next queued state gets.
    next_generation: AtomicU64,
    /// Set by [`SensorStates::finish`]: the writer tries a failed save no more.
    finishing: Mutex<bool>,
    /// Wakes the writer from a pause between tries when the server shuts down.
    finished: std::sync::Condvar,
    telemetry: Telemetry,
}

/// What the process knows of one sensor; forgotten once no stream holds it and no save of it is queued.
#[derive(Debug)]
struct Record {
    /// The stream that took the sensor up last (by [`StreamClaim`] number), while it holds it: only that stream
    /// saves the sensor, so an older stream of it (a client's half-dead connection, ended later) never overwrites
    /// the newer one's state.
    claim: Option<u64>,
    /// The state queued for saving and not yet committed: a sensor that streams again at once restores from here,
    /// not from an older state in the store.
    pending: Option<Pending>,
    /// What the sensor's next write expects the store to hold.
    expect: Expect,
    /// The state's versions (seq, snapshot), newest first, that the store has for a resuming stream: its next save
    /// keeps them beside the new one (at most [`value::RESUME_VERSIONS`] in all). Only a save that lands adds one,
    /// so a save that fails never pushes out the version of a checkpoint the client has.
    older: Versions,
}

impl Record {
    fn new() -> Self {
        Self { claim: None, pending: None, expect: Expect::Any, older: Vec::new() }
    }
}

/// A sensor's versions (seq, snapshot), newest first.
type Versions = Vec<(u64, Arc<[u8]>)>;

/// What a stream restores and saves its sensors under: the newest stream of a sensor owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamClaim(u64);

/// A batch on its way to the writer.
struct Queued {
    states: Vec<QueuedState>,
    /// Told which sensors the batch made durable, when the stream asked.
    committed: Option<tokio::sync::oneshot::Sender<Durable>>,
}

/// One sensor's state on its way to the writer.
struct QueuedState {
    sensor_id: String,
    /// The stream that saved it.
    claim: u64,
    /// Whether that stream resumes (the sensor keeps versions).
    resuming: bool,
    /// The value written ([`value`]).
    value: Vec<u8>,
    /// Its generation in the sensor's record.
    generation: u64,
    /// The `seq` of the sensor's latest reading in it.
    seq: u64,
}

/// A state queued for saving.
#[derive(Debug)]
struct Pending {
    generation: u64,
    value: Vec<u8>,
}

/// What a restore found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Whether another process saved it (a replica, or this server before a restart): its sinks may not know
    /// what fires for the sensor.
    pub from_elsewhere: bool,
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

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_expect(&self, sensor_id: &str, expect: Expect) {
        if let Some(record) = self.records().get_mut(sensor_id) {
            record.expect = expect;
        }
    }

    /// After a write of revision `revision`: what the record's next write expects, never going back (revisions of
    /// a key only grow, and a take-over may have written a later one meanwhile).
    fn advance(record: &mut Record, revision: u64) {
        if !matches!(record.expect, Expect::Revision(later) if later > revision) {
            record.expect = Expect::Revision(revision);
        }
    }

    /// Whether `value` was written by another process.
    fn written_elsewhere(&self, value: &[u8]) -> bool {
        value::decode(value).is_some_and(|(owner, _)| owner != self.owner)
    }

    /// Sensor `sensor_id`'s value: `queued` (what this process last queued for it) unless the store holds a later
    /// one, written by another replica. In a shared store, the value is written back under this process's name at
    /// once (compare-and-set on the revision loaded), so that an older stream of the sensor on another replica
    /// fails its next save: the newest stream wins. Sets what the sensor's next write expects.
    fn take_over(
        &self,
        store: &dyn StateStore,
        sensor_id: &str,
        queued: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if queued.is_some() && !store.shared() {
            return Ok(queued);
        }
        for _ in 0..TAKE_OVER_TRIES {
            let stored = store.load(sensor_id)?;
            let expect = stored.as_ref().map_or(Expect::Absent, |stored| Expect::Revision(stored.revision));
            let value = match (stored, &queued) {
                (Some(stored), _) if self.written_elsewhere(&stored.value) => {
                    // Another replica saved the sensor after this process queued its state: that state is older,
                    // and is not to be written.
                    if let Some(record) = self.records().get_mut(sensor_id) {
                        record.pending = None;
                    }
                    Some(stored.value)
                }
                (_, Some(queued)) => Some(queued.clone()),
                (stored, None) => stored.map(|stored| stored.value),
            };
            if !store.shared() {
                self.set_expect(sensor_id, expect);
                return Ok(value);
            }
            let versions = value.as_deref().and_then(value::decode).map(|(_, versions)| versions).unwrap_or_default();
            let mine = value::encode(self.owner, versions);
            let claim = Write { sensor_id: sensor_id.to_owned(), value: mine, expect };
            match store.save(std::slice::from_ref(&claim)).as_deref() {
                Ok([Written::Saved(revision)]) => {
                    if let Some(record) = self.records().get_mut(sensor_id) {
                        Self::advance(record, *revision);
                    }
                    return Ok(value);
                }
                // Written meanwhile (its old owner saved it): loaded again.
                Ok([Written::Superseded]) => {}
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        sensor_id,
                        "Could not take a sensor over: a stream of it elsewhere may overwrite its state."
                    );
                    self.set_expect(sensor_id, expect);
                    return Ok(value);
                }
            }
        }
        Err(StoreError("the sensor's state kept changing while this stream took it over".to_owned()))
    }

    /// Writes one queued batch (on the writer's thread), and tells the stream which sensors it made durable. When
    /// the store fails, what is to be tried again: the states no later save has replaced (they stay where restores
    /// look first meanwhile).
    fn write(&self, queued: Queued) -> Option<Queued> {
        let Queued { mut states, committed } = queued;
        let writes: Vec<Write> = {
            let records = self.records();
            // Only what is still the sensor's latest queued state: a later save replaced the rest, or a take-over
            // found a later state written elsewhere.
            states.retain(|state| {
                records.get(&state.sensor_id).and_then(|record| record.pending.as_ref()).map(|p| p.generation)
                    == Some(state.generation)
            });
            states
                .iter()
                .map(|state| {
                    let expect = records.get(&state.sensor_id).map_or(Expect::Any, |record| record.expect);
                    Write { sensor_id: state.sensor_id.clone(), value: state.value.clone(), expect }
                })
                .collect()
        };
        let Some(store) = self.store() else {
            let mut records = self.records();
            for state in &states {
                settle(&mut records, &state.sensor_id, Some(state.generation));
            }
            self.saves("closed", states.len() as u64);
            return None;
        };
        let mut outcomes = match store.save(&writes) {
            Ok(outcomes) if outcomes.len() == writes.len() => outcomes,
            Ok(_) => vec![Written::Failed; writes.len()],
            Err(error) => {
                tracing::warn!(%error, sensors = writes.len(), "Could not save sensor states; trying again.");
                vec![Written::Failed; writes.len()]
            }
        };
        self.confirm_superseded(&*store, &writes, &mut outcomes);
        let mut durable = Vec::new();
        let mut retry = Vec::new();
        let (mut saved, mut superseded, mut failed) = (0u64, 0u64, 0u64);
        {
            let mut records = self.records();
            for (state, outcome) in states.into_iter().zip(outcomes) {
                match outcome {
                    Written::Saved(revision) => {
                        if let Some(record) = records.get_mut(&state.sensor_id) {
                            Self::advance(record, revision);
                            // The versions the store now has, for the stream's next save.
                            if state.resuming && record.claim == Some(state.claim) {
                                record.older = value::decode(&state.value)
                                    .map(|(_, versions)| {
                                        versions
                                            .into_iter()
                                            .take(value::RESUME_VERSIONS - 1)
                                            .map(|(seq, snapshot)| (seq, Arc::from(snapshot)))
                                            .collect()
                                    })
                                    .unwrap_or_default();
                            }
                        }
                        durable.push((state.sensor_id.clone(), state.seq));
                        saved += 1;
                    }
                    Written::Superseded => {
                        // Another process holds the sensor now: the stream that saved it saves it no more.
                        if let Some(record) = records.get_mut(&state.sensor_id).filter(|r| r.claim == Some(state.claim))
                        {
                            record.claim = None;
                        }
                        tracing::info!(
                            sensor_id = state.sensor_id,
                            "A sensor's state was taken over elsewhere; this stream no longer saves it."
                        );
                        superseded += 1;
                    }
                    Written::Failed => {
                        failed += 1;
                        // Tried again unless a later save of the sensor has replaced it.
                        let current = records
                            .get(&state.sensor_id)
                            .and_then(|record| record.pending.as_ref())
                            .is_some_and(|pending| pending.generation == state.generation);
                        if current {
                            retry.push(state);
                        }
                        continue;
                    }
                }
                settle(&mut records, &state.sensor_id, Some(state.generation));
            }
        }
        self.saves("saved", saved);
        self.saves("superseded", superseded);
        self.saves("error", failed);
        if failed > 0 {
            tracing::warn!(sensors = failed, "Could not save sensor states; trying again.");
        }
        // A resuming stream waits for no retry: what failed is not durable yet.
        if let Some(committed) = committed {
            let _ = committed.send(durable);
        }
        (!retry.is_empty()).then_some(Queued { states: retry, committed: None })
    }

    /// A write found superseded may be this very write, an earlier try of it that landed after it was given up on
    /// (a timeout): when the store holds exactly its value, it was saved.
    fn confirm_superseded(&self, store: &dyn StateStore, writes: &[Write], outcomes: &mut [Written]) {
        for (write, outcome) in writes.iter().zip(outcomes.iter_mut()) {
            if *outcome != Written::Superseded || !store.shared() {
                continue;
            }
            if let Ok(Some(stored)) = store.load(&write.sensor_id)
                && stored.value == write.value
            {
                *outcome = Written::Saved(stored.revision);
            }
        }
    }

    /// Counts `count` sensor states saved, or not, as `result` says.
    fn saves(&self, result: &'static str, count: u64) {
        if count > 0 {
            self.telemetry.counter("alertstream_state_saves_total", vec![label("result", result)]).increment(count);
        }
    }

    /// Writes `queued`, trying again what failed after a pause that doubles (up to [`MAX_RETRY_PAUSE`]), until it
    /// lands, a later save replaces it, or the server shuts down (then what is left is lost: counted and logged).
    fn write_until_saved(&self, queued: Queued) {
        let mut retry = self.write(queued);
        let mut pause = FIRST_RETRY_PAUSE;
        while let Some(again) = retry {
            if !self.pause(pause) {
                let mut records = self.records();
                for state in &again.states {
                    settle(&mut records, &state.sensor_id, Some(state.generation));
                }
                drop(records);
                tracing::warn!(
                    sensors = again.states.len(),
                    "Shutting down: sensor states the store refused are lost."
                );
                self.saves("abandoned", again.states.len() as u64);
                return;
            }
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
            retry = self.write(again);
        }
    }

    /// Waits `pause`, unless the server shuts down first: whether to go on.
    fn pause(&self, pause: Duration) -> bool {
        let finishing = self.finishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (finishing, _) = self
            .finished
            .wait_timeout_while(finishing, pause, |finishing| !*finishing)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !*finishing
    }
}

/// Forgets sensor `sensor_id`'s queued state of `generation` (committed, or lost) unless a later save has replaced
/// it, and the sensor's record once no stream holds it and nothing of it is queued.
fn settle(records: &mut HashMap<String, Record>, sensor_id: &str, generation: Option<u64>) {
    let Some(record) = records.get_mut(sensor_id) else { return };
    if generation.is_some() && record.pending.as_ref().map(|p| p.generation) == generation {
        record.pending = None;
    }
    if record.claim.is_none() && record.pending.is_none() {
        records.remove(sensor_id);
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
            records: Mutex::default(),
            save_interval,
            owner: fastrand::u64(..),
            next_claim: AtomicU64::new(1),
            next_generation: AtomicU64::new(0),
            finishing: Mutex::new(false),
            finished: std::sync::Condvar::new(),
            telemetry,
        });
        // The writer holds only a weak handle, so that dropping the last `SensorStates` closes the store.
        let writer_inner = Arc::downgrade(&inner);
        let writer = std::thread::Builder::new().name("alertstream-state".to_owned()).spawn(move || {
            for queued in queue {
                let Some(inner) = writer_inner.upgrade() else { return };
                inner.write_until_saved(queued);
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
    /// only it saves the sensor (in a shared store, through compare-and-set: a stream of it on another replica
    /// saves it no more). For a client resuming from its reading `resume_from`, the version restored is the newest
    /// older than that reading ([`value`]). What was restored, if anything; a state the engine refuses leaves the
    /// sensor fresh.
    ///
    /// # Errors
    /// The store cannot be read: the sensor's saved state is unknown (a stream that resumes must not go on).
    pub fn restore(
        &self,
        claim: StreamClaim,
        rules: &RuleSet,
        stream: &mut StreamState,
        sensor_id: &str,
        now: SystemTime,
        resume_from: Option<u64>,
    ) -> Result<Option<Restored>, StoreError> {
        let Some(inner) = self.inner.as_ref() else { return Ok(None) };
        let queued = {
            let mut records = inner.records();
            let record = records.entry(sensor_id.to_owned()).or_insert_with(Record::new);
            record.claim = Some(claim.0);
            record.pending.as_ref().map(|pending| pending.value.clone())
        };
        let loaded = match inner.store() {
            Some(store) => inner.take_over(&*store, sensor_id, queued),
            None => Ok(queued),
        };
        let count = |result| inner.telemetry.counter("alertstream_state_loads_total", vec![label("result", result)]);
        let value = match loaded {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(sensor_id, %error, "Could not load a sensor's state.");
                if let Some(record) = inner.records().get_mut(sensor_id) {
                    record.expect = Expect::Any;
                    record.older.clear();
                }
                count("error").increment(1);
                return Err(error);
            }
        };
        // The versions this stream's saves keep: those of the state restored, when the stream resumes.
        let mut older = Vec::new();
        let (restored, result) = match value.as_deref().map(value::decode) {
            Some(Some((owner, versions))) if !versions.is_empty() => {
                let chosen = value::choose(&versions, resume_from);
                match rules.restore(stream, sensor_id, versions[chosen].1, now) {
                    Ok(_) => {
                        if resume_from.is_some() {
                            older = versions[chosen..]
                                .iter()
                                .take(value::RESUME_VERSIONS - 1)
                                .map(|(seq, snapshot)| (*seq, Arc::from(*snapshot)))
                                .collect();
                        }
                        (Some(Restored { from_elsewhere: owner != inner.owner }), "restored")
                    }
                    Err(error) => {
                        tracing::warn!(sensor_id, %error, "A saved sensor state was not restored; the sensor starts fresh.");
                        (None, "refused")
                    }
                }
            }
            // Taken over by a stream before it had a state to save.
            Some(Some(_)) | None => (None, "none"),
            Some(None) => {
                tracing::warn!(sensor_id, "A saved sensor state is damaged; the sensor starts fresh.");
                (None, "refused")
            }
        };
        if let Some(record) = inner.records().get_mut(sensor_id) {
            record.older = older;
        }
        count(result).increment(1);
        Ok(restored)
    }

    /// Saves every sensor `stream` (on `rules`, its claim `claim`) tracks and no newer stream has taken up: now
    /// and then while the stream is open, and when it `ends` (which gives its sensors up). Never waits: with the
    /// writer's queue full, the states are dropped, counted and logged. A state queued is what the sensor's next
    /// stream restores, committed or not. For a `resuming` stream, each sensor keeps its last few versions, and
    /// the answer says which sensors the save made durable, once the store has them.
    pub fn save(
        &self,
        claim: StreamClaim,
        rules: &RuleSet,
        stream: &StreamState,
        ends: bool,
        resuming: bool,
    ) -> Option<Committed> {
        let inner = self.inner.as_ref()?;
        if stream.sensor_count() == 0 {
            return None;
        }
        let owns = |records: &HashMap<String, Record>, id: &str| {
            records.get(id).is_some_and(|record| record.claim == Some(claim.0))
        };
        // The sensors this stream owns (and the versions the store has of each), under the lock; their snapshots
        // (which may take a while) outside it.
        let owned: Vec<(&str, u64, Versions)> = {
            let records = inner.records();
            stream
                .sensors()
                .filter_map(|(id, _, seq)| {
                    let record = records.get(id).filter(|record| record.claim == Some(claim.0))?;
                    Some((id, seq, if resuming { record.older.clone() } else { Vec::new() }))
                })
                .collect()
        };
        let values: Vec<(&str, u64, Vec<u8>)> = owned
            .into_iter()
            .filter_map(|(id, seq, older)| {
                let snapshot = rules.snapshot(stream, id)?;
                // Newest first, seqs decreasing: a version the new one has caught up with (a reading without a seq
                // set the sensor's seq back) is dropped.
                let versions = std::iter::once((seq, snapshot.as_slice()))
                    .chain(older.iter().filter(|(older, _)| *older < seq).map(|(seq, snapshot)| (*seq, &snapshot[..])))
                    .take(if resuming { value::RESUME_VERSIONS } else { 1 });
                Some((id, seq, value::encode(inner.owner, versions)))
            })
            .collect();
        let states: Vec<QueuedState> = {
            let mut records = inner.records();
            let states = values
                .into_iter()
                .filter_map(|(id, seq, value)| {
                    // Still this stream's (a save may have found it taken over meanwhile).
                    let record = records.get_mut(id).filter(|record| record.claim == Some(claim.0))?;
                    let generation = inner.next_generation.fetch_add(1, Ordering::Relaxed);
                    record.pending = Some(Pending { generation, value: value.clone() });
                    Some(QueuedState { sensor_id: id.to_owned(), claim: claim.0, resuming, value, generation, seq })
                })
                .collect();
            // An ending stream gives its sensors up, once their last states are where the next stream looks first.
            if ends {
                for (id, _, _) in stream.sensors() {
                    if owns(&records, id) {
                        if let Some(record) = records.get_mut(id) {
                            record.claim = None;
                        }
                        settle(&mut records, id, None);
                    }
                }
            }
            states
        };
        if states.is_empty() {
            return None;
        }
        let (sender, answer) = if resuming {
            let (sender, answer) = tokio::sync::oneshot::channel();
            (Some(sender), Some(answer))
        } else {
            (None, None)
        };
        let queued = Queued { states, committed: sender };
        let refused = match &*inner.saves.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(saves) => saves.try_send(queued).err().map(|e| match e {
                mpsc::TrySendError::Full(q) => (q, "queue_full"),
                mpsc::TrySendError::Disconnected(q) => (q, "closed"),
            }),
            None => Some((queued, "closed")),
        };
        if let Some((queued, why)) = refused {
            {
                let mut records = inner.records();
                for state in &queued.states {
                    settle(&mut records, &state.sensor_id, Some(state.generation));
                }
            }
            let count = queued.states.len() as u64;
            tracing::warn!(
                sensors = count,
                why,
                "The state writer is behind or stopped: these sensor states are not saved."
            );
            inner.saves(why, count);
        }
        answer
    }

    /// Whether replicas share the store.
    pub fn is_shared(&self) -> bool {
        self.inner.as_ref().and_then(|inner| inner.store()).is_some_and(|store| store.shared())
    }

    /// Whether another process holds sensor `sensor_id` now: a shared store has its state, written by another
    /// replica (which took the sensor over). False while a stream here holds it and without a shared store; `None`
    /// when the store cannot say. One read of the store: not for a stream's task.
    pub fn owned_elsewhere(&self, sensor_id: &str) -> Option<bool> {
        let Some(inner) = &self.inner else { return Some(false) };
        if inner.records().get(sensor_id).is_some_and(|record| record.claim.is_some()) {
            return Some(false);
        }
        let Some(store) = inner.store().filter(|store| store.shared()) else { return Some(false) };
        match store.load(sensor_id) {
            Ok(stored) => Some(stored.is_some_and(|stored| inner.written_elsewhere(&stored.value))),
            Err(error) => {
                tracing::debug!(sensor_id, %error, "Cannot tell whether another replica holds a sensor.");
                None
            }
        }
    }

    /// Gives up every sensor `stream` (its claim `claim`) holds, saving nothing: the sensors' next stream restores
    /// what was saved before (a resuming stream whose client is gone: the client sends again what followed).
    pub fn release(&self, claim: StreamClaim, stream: &StreamState) {
        let Some(inner) = &self.inner else { return };
        let mut records = inner.records();
        for (id, _, _) in stream.sensors() {
            if let Some(record) = records.get_mut(id).filter(|record| record.claim == Some(claim.0)) {
                record.claim = None;
                record.older.clear();
                settle(&mut records, id, None);
            }
        }
    }

    /// Gives up sensor `sensor_id`, which the stream (its claim `claim`) took up but will not hold: it ends
    /// because the sensor's state could not be loaded.
    pub fn give_up(&self, claim: StreamClaim, sensor_id: &str) {
        let Some(inner) = &self.inner else { return };
        let mut records = inner.records();
        if let Some(record) = records.get_mut(sensor_id).filter(|record| record.claim == Some(claim.0)) {
            record.claim = None;
            settle(&mut records, sensor_id, None);
        }
    }

    /// The server begins to shut down: a failed save is tried no more (each queued save gets one try), so that no
    /// stream waits on a store that is away.
    pub fn stop_retrying(&self) {
        let Some(inner) = &self.inner else { return };
        *inner.finishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        inner.finished.notify_all();
    }

    /// Closes the writer's queue and waits until it has saved what it holds: at shutdown, after the streams ended.
    pub async fn finish(&self) {
        let Some(inner) = &self.inner else { return };
        self.stop_retrying();
        drop(inner.saves.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        let writer = inner.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        // Closed: a later server may open the same store (redb allows one process at a time).
        drop(inner.store.write().unwrap_or_else(std::sync::PoisonError::into_inner).take());
    }
}
