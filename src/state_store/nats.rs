//! The shared store (`--state-store nats://HOST:PORT`, or a JetStream cluster's nodes separated by commas): a NATS
//! JetStream key-value bucket, `alertstream_state`, so that replicas share sensor states (`--state-replicas` copies
//! of each on a cluster). Keys are sensor ids in hex (any id is a valid key); the bucket keeps one
//! revision a key and forgets states after `--state-ttl` (the stream's maximum age).
//!
//! The bucket's stream (`KV_alertstream_state`) is made with key-value settings by hand, then opened as a bucket:
//! async-nats 0.51's `create_key_value` asks for account information that Debian's nats-server 2.9.10 does not
//! send.
//!
//! The client runs on a thread of its own with its own runtime. The store's calls are synchronous, as the trait's
//! are: a load waits for one round trip (at most [`LOAD_TIMEOUT`]) on the stream's task, as the embedded store's
//! read does; while the client is disconnected, loads and saves fail at once (counted and logged; the writer tries
//! a failed save again later). A state larger than the server's maximum payload (1 MiB by default) is cut into
//! chunks under keys of their own, its sensor's key naming them ([`Bucket`]); a load then takes one round trip per
//! chunk.
//!
//! Replicas share the bucket, so a write is a compare-and-set on the key's revision (`update`, or `create` for a
//! sensor that had none), and the store is [shared](StateStore::shared): a replica that takes a sensor up writes
//! it back at once, and the replica that held it before fails its next save ([`Written::Superseded`]).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    kv::{self, Operation},
    stream,
};

use bytes::Bytes;

use super::{Expect, StateStore, StoreError, Stored, Write, Written};
use crate::nats_servers::servers;

/// The bucket.
pub const NATS_BUCKET: &str = "alertstream_state";
/// How long a save (on the writer's thread) waits for the client's answer, and connecting may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a load (on a stream's task) waits for the client's answer.
const LOAD_TIMEOUT: Duration = Duration::from_secs(1);
/// Requests waiting for the client, at most.
const REQUESTS: usize = 256;
/// Writes in one request to the client's thread (each a round trip, or one per chunk).
const WRITES_PER_REQUEST: usize = 64;
/// How many times a load reads a state whose chunks a newer write purged meanwhile.
const LOAD_TRIES: usize = 3;

enum Request {
    Load(String, mpsc::SyncSender<Result<Option<Stored>, StoreError>>),
    Save(Vec<Write>, mpsc::SyncSender<Result<Vec<Written>, StoreError>>),
}

/// The NATS key-value store.
pub struct NatsStore {
    requests: mpsc::SyncSender<Request>,
    /// Whether the client is connected now: while it is not, a load fails at once instead of waiting.
    connected: Arc<AtomicBool>,
}

fn failed(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{what}: {error}"))
}

/// The key of a sensor: its id's bytes in hex.
fn key(sensor_id: &str) -> String {
    use std::fmt::Write as _;
    sensor_id.bytes().fold(String::with_capacity(sensor_id.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl NatsStore {
    /// Connects to `url` (one server, or a cluster's nodes separated by commas) and opens the bucket, keeping
    /// states for `ttl`; when the bucket is missing, it is made with `replicas` copies of each state (one per
    /// server of a JetStream cluster, at most its size).
    ///
    /// # Errors
    /// The server cannot be reached, has no JetStream, or refuses the bucket.
    pub fn open(url: &str, ttl: Duration, replicas: usize) -> Result<Self, StoreError> {
        let (requests, inbox) = mpsc::sync_channel::<Request>(REQUESTS);
        let (ready, opened) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        let url = url.to_owned();
        let connected = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&connected);
        std::thread::Builder::new()
            .name("alertstream-nats-state".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready.send(Err(failed("cannot start the NATS client", e)));
                        return;
                    }
                };
                runtime.block_on(serve(url, (ttl, replicas), flag, inbox, ready));
            })
            .map_err(|e| failed("cannot start the NATS client", e))?;
        opened.recv_timeout(REPLY_TIMEOUT * 2).map_err(|_| StoreError("NATS did not answer in time".to_owned()))??;
        Ok(Self { requests, connected })
    }

    fn ask<T>(
        &self,
        timeout: Duration,
        request: impl FnOnce(mpsc::SyncSender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests.try_send(request(reply)).map_err(|_| StoreError("the NATS client is busy or gone".to_owned()))?;
        answer.recv_timeout(timeout).map_err(|_| StoreError("NATS did not answer in time".to_owned()))?
    }
}

impl StateStore for NatsStore {
    fn load(&self, sensor_id: &str) -> Result<Option<Stored>, StoreError> {
        if !self.connected.load(Ordering::Relaxed) {
            return Err(StoreError("NATS is unreachable".to_owned()));
        }
        self.ask(LOAD_TIMEOUT, |reply| Request::Load(key(sensor_id), reply))
    }

    fn save(&self, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
        // Fails at once too while disconnected, so that a shutdown never waits on NATS batch after batch.
        if !self.connected.load(Ordering::Relaxed) {
            return Err(StoreError("NATS is unreachable".to_owned()));
        }
        // In requests of a few writes, each waited for on its own: a large batch is not given up on as a whole,
        // and what landed before a failure is known.
        let mut written = Vec::with_capacity(writes.len());
        for part in writes.chunks(WRITES_PER_REQUEST) {
            let batch = part.iter().map(|write| Write { sensor_id: key(&write.sensor_id), ..write.clone() }).collect();
            match self.ask(REPLY_TIMEOUT, |reply| Request::Save(batch, reply)) {
                Ok(outcomes) => {
                    // Short: a write failed, and those after it were not tried.
                    let short = outcomes.len() < part.len();
                    written.extend(outcomes);
                    if short {
                        break;
                    }
                }
                Err(error) if written.is_empty() => return Err(error),
                Err(error) => {
                    tracing::debug!(%error, "A part of a batch of sensor states was not saved.");
                    break;
                }
            }
        }
        written.resize(writes.len(), Written::Failed);
        Ok(written)
    }

    fn shared(&self) -> bool {
        true
    }
}

/// The client's thread: connects, opens the bucket, then answers requests until the store is dropped.
async fn serve(
    url: String,
    (ttl, replicas): (Duration, usize),
    connected: Arc<AtomicBool>,
    inbox: mpsc::Receiver<Request>,
    ready: mpsc::SyncSender<Result<(), StoreError>>,
) {
    let events = Arc::clone(&connected);
    let opened = async {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(REPLY_TIMEOUT)
            .event_callback(move |event| {
                let connected = Arc::clone(&events);
                async move {
                    match event {
                        async_nats::Event::Connected => connected.store(true, Ordering::Relaxed),
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            connected.store(false, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            })
            .connect(servers(&url).as_slice())
            .await
            .map_err(|e| failed("cannot connect to NATS", e))?;
        let max_payload = client.max_payload();
        let js = jetstream::new(client);
        let config = stream::Config {
            name: format!("KV_{NATS_BUCKET}"),
            description: Some("alertstream sensor states".to_owned()),
            subjects: vec![format!("$KV.{NATS_BUCKET}.>")],
            max_messages_per_subject: 1,
            max_age: ttl,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: replicas,
            ..Default::default()
        };
        let stream = js.get_or_create_stream(config).await.map_err(|e| failed("cannot make the state bucket", e))?;
        let kv = js.get_key_value(NATS_BUCKET).await.map_err(|e| failed("cannot open the state bucket", e))?;
        let chunk = max_payload.saturating_sub(PAYLOAD_HEADROOM).max(1);
        Ok::<_, StoreError>(Bucket { kv, stream, chunk, chunked: HashMap::new() })
    }
    .await;
    let mut bucket = match opened {
        Ok(bucket) => {
            connected.store(true, Ordering::Relaxed);
            let _ = ready.send(Ok(()));
            bucket
        }
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    // The std receiver blocks; each request is taken on a blocking thread so the runtime goes on driving the client.
    let inbox = Arc::new(Mutex::new(inbox));
    loop {
        let next = Arc::clone(&inbox);
        let request = tokio::task::spawn_blocking(move || next.lock().ok()?.recv().ok()).await.ok().flatten();
        let Some(request) = request else { return };
        match request {
            Request::Load(key, reply) => {
                let _ = reply.send(bucket.load(&key).await);
            }
            Request::Save(batch, reply) => {
                let _ = reply.send(bucket.save(batch).await);
            }
        }
    }
}

/// Room left in a message for its headers.
const PAYLOAD_HEADROOM: usize = 1_024;
/// The first byte of a key's value: the state itself follows.
const INLINE: u8 = 0;
/// The first byte of a key's value: a manifest follows (the chunks' set, their count, the state's length).
const CHUNKED: u8 = 1;

/// A state too large for one message: where its chunks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Manifest {
    /// The set's name, drawn at random per write.
    set: u64,
    chunks: u32,
    len: u64,
}

impl Manifest {
    fn encode(self) -> Vec<u8> {
        let mut out = vec![CHUNKED];
        out.extend_from_slice(&self.set.to_le_bytes());
        out.extend_from_slice(&self.chunks.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out
    }

    fn decode(value: &[u8]) -> Option<Self> {
        let rest = value.strip_prefix(&[CHUNKED])?;
        let (set, rest) = rest.split_first_chunk::<8>()?;
        let (chunks, rest) = rest.split_first_chunk::<4>()?;
        let len = rest.first_chunk::<8>()?;
        Some(Self { set: u64::from_le_bytes(*set), chunks: u32::from_le_bytes(*chunks), len: u64::from_le_bytes(*len) })
    }

    /// The key of chunk `index` of sensor key `key`'s set.
    fn chunk_key(self, key: &str, index: u32) -> String {
        format!("{key}.{:016x}.{index}", self.set)
    }

    /// The subjects of the whole set, for one purge.
    fn subjects(self, key: &str) -> String {
        format!("$KV.{NATS_BUCKET}.{key}.{:016x}.>", self.set)
    }
}

/// Why a state could not be read.
enum Unreadable {
    /// A chunk it names is gone: a newer write purged it after its head was read.
    Gone,
    Failed(StoreError),
}

impl From<StoreError> for Unreadable {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

/// The bucket, as the client's thread uses it. A state that fits one message is stored under its sensor's key
/// (`INLINE`, then the state). A larger one is cut into chunks of at most the server's maximum payload, each under
/// a key of its own (`<key>.<set>.<index>`), written first; the sensor's key then gets a manifest, by
/// compare-and-set as any value. A write that loses the compare-and-set purges the chunks it wrote; one that wins
/// purges the set it replaced, when this client wrote or read that set.
struct Bucket {
    kv: kv::Store,
    stream: stream::Stream,
    /// The largest value one message carries.
    chunk: usize,
    /// The chunk sets this client knows a key's value names (from a load or a save), so that the next write purges
    /// them.
    chunked: HashMap<String, Manifest>,
}

impl Bucket {
    /// The state of sensor key `key`, read again when a newer write purged its chunks while they were read.
    async fn load(&mut self, key: &str) -> Result<Option<Stored>, StoreError> {
        for _ in 0..LOAD_TRIES {
            match self.read(key).await {
                Ok(loaded) => return Ok(loaded),
                Err(Unreadable::Failed(error)) => return Err(error),
                Err(Unreadable::Gone) => {}
            }
        }
        Err(StoreError("the saved state kept changing while it was read".to_owned()))
    }

    /// The state of sensor key `key`, once.
    async fn read(&mut self, key: &str) -> Result<Option<Stored>, Unreadable> {
        let entry = self.kv.entry(key).await.map_err(|e| failed("cannot read the state", e))?;
        let Some(entry) = entry.filter(|entry| entry.operation == Operation::Put) else { return Ok(None) };
        let revision = entry.revision;
        if let Some(state) = entry.value.strip_prefix(&[INLINE]) {
            return Ok(Some(Stored { value: state.to_vec(), revision }));
        }
        let manifest =
            Manifest::decode(&entry.value).ok_or_else(|| StoreError("a saved state's head is damaged".to_owned()))?;
        let mut value = Vec::with_capacity(usize::try_from(manifest.len).unwrap_or(0));
        for index in 0..manifest.chunks {
            let chunk =
                self.kv.get(manifest.chunk_key(key, index)).await.map_err(|e| failed("cannot read the state", e))?;
            // A newer write of the sensor may have purged this set since its head was read.
            let chunk = chunk.ok_or(Unreadable::Gone)?;
            value.extend_from_slice(&chunk);
        }
        if value.len() as u64 != manifest.len {
            return Err(StoreError("a saved state's chunks do not add up".to_owned()).into());
        }
        self.chunked.insert(key.to_owned(), manifest);
        Ok(Some(Stored { value, revision }))
    }

    /// Writes each value with its compare-and-set (see [`Bucket`]). After a write that fails, the rest are not
    /// tried ([`Written::Failed`]); what landed before stands.
    async fn save(&mut self, batch: Vec<Write>) -> Result<Vec<Written>, StoreError> {
        let mut written = Vec::with_capacity(batch.len());
        for Write { sensor_id: key, value, expect } in batch {
            match self.save_one(&key, &value, expect).await {
                Ok(outcome) => written.push(outcome),
                Err(error) => {
                    tracing::debug!(%error, "Could not save a sensor state.");
                    break;
                }
            }
        }
        Ok(written)
    }

    async fn save_one(&mut self, key: &str, value: &[u8], expect: Expect) -> Result<Written, StoreError> {
        let (head, manifest) = if value.len() < self.chunk {
            let mut head = Vec::with_capacity(value.len() + 1);
            head.push(INLINE);
            head.extend_from_slice(value);
            (head, None)
        } else {
            let manifest = self.write_chunks(key, value).await?;
            (manifest.encode(), Some(manifest))
        };
        // A failed write is left alone: it may have landed (a timeout), and then its chunks are the state's.
        let outcome = self.write_head(key, head, expect).await?;
        let unused = match (outcome, manifest) {
            (Written::Saved(_), Some(manifest)) => self.chunked.insert(key.to_owned(), manifest),
            (Written::Saved(_), None) => self.chunked.remove(key),
            // Not written: the chunks are nobody's.
            (_, manifest) => manifest,
        };
        if let Some(unused) = unused
            && let Err(e) = self.stream.purge().filter(unused.subjects(key)).await
        {
            tracing::debug!(error = %e, "Could not purge a state's unused chunks; they expire with --state-ttl.");
        }
        Ok(outcome)
    }

    /// Writes `value`'s chunks under a new set: its manifest.
    async fn write_chunks(&self, key: &str, value: &[u8]) -> Result<Manifest, StoreError> {
        let chunks = u32::try_from(value.len().div_ceil(self.chunk))
            .map_err(|_| StoreError(format!("a state of {} bytes is too large to save", value.len())))?;
        let manifest = Manifest { set: fastrand::u64(..), chunks, len: value.len() as u64 };
        for (index, chunk) in (0..).zip(value.chunks(self.chunk)) {
            self.kv
                .put(manifest.chunk_key(key, index), Bytes::copy_from_slice(chunk))
                .await
                .map_err(|e| failed("cannot save a state", e))?;
        }
        Ok(manifest)
    }

    /// Writes a sensor's key: `update` on the revision expected, `create` when none is, `put` when anything goes.
    async fn write_head(&self, key: &str, head: Vec<u8>, expect: Expect) -> Result<Written, StoreError> {
        let outcome = match expect {
            Expect::Any => self.kv.put(key, head.into()).await.map(Written::Saved).map_err(|e| e.to_string()),
            Expect::Absent => match self.kv.create(key, head.into()).await {
                Ok(revision) => Ok(Written::Saved(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Written::Superseded),
                Err(e) => Err(e.to_string()),
            },
            Expect::Revision(revision) => match self.kv.update(key, head.into(), revision).await {
                Ok(revision) => Ok(Written::Saved(revision)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Written::Superseded),
                Err(e) => Err(e.to_string()),
            },
        };
        outcome.map_err(|e| failed("cannot save a state", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_back_and_names_its_chunks() {
        let manifest = Manifest { set: 0xabc, chunks: 3, len: 2_500_000 };
        assert_eq!(Manifest::decode(&manifest.encode()), Some(manifest));
        assert_eq!(Manifest::decode(&[INLINE, 1, 2]), None);
        assert_eq!(Manifest::decode(&manifest.encode()[..10]), None);
        assert_eq!(manifest.chunk_key("7072", 2), "7072.0000000000000abc.2");
        assert_eq!(manifest.subjects("7072"), "$KV.alertstream_state.7072.0000000000000abc.>");
    }
}
