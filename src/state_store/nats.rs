//! The shared store (`--state-store nats://HOST:PORT`): a NATS JetStream key-value bucket, `alertstream_state`, so
//! that replicas share sensor states. Keys are sensor ids in hex (any id is a valid key); the bucket keeps one
//! revision a key and forgets states after `--state-ttl` (the stream's maximum age).
//!
//! The bucket's stream (`KV_alertstream_state`) is made with key-value settings by hand, then opened as a bucket:
//! async-nats 0.51's `create_key_value` asks for account information that Debian's nats-server 2.9.10 does not
//! send.
//!
//! The client runs on a thread of its own with its own runtime. The store's calls are synchronous, as the trait's
//! are: a load waits for one round trip (at most [`LOAD_TIMEOUT`]) on the stream's task, as the embedded store's
//! read does; while the client is disconnected, loads and saves fail at once (counted and logged; the writer tries
//! a failed save again later). A
//! state larger than the server's maximum payload (1 MiB by default) is not saved: the call fails, counted and
//! logged, and the sensor keeps its older saved state.
//!
//! Replicas share the bucket, so a write is a compare-and-set on the key's revision (`update`, or `create` for a
//! sensor that had none), and the store is [shared](StateStore::shared): a replica that takes a sensor up writes
//! it back at once, and the replica that held it before fails its next save ([`Written::Superseded`]).

use std::{
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

use super::{Expect, StateStore, StoreError, Stored, Write, Written};

/// The bucket.
pub const NATS_BUCKET: &str = "alertstream_state";
/// How long a save (on the writer's thread) waits for the client's answer, and connecting may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a load (on a stream's task) waits for the client's answer.
const LOAD_TIMEOUT: Duration = Duration::from_secs(1);
/// Requests waiting for the client, at most.
const REQUESTS: usize = 256;

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
    /// Connects to `url` and opens (making it when missing) the bucket, keeping states for `ttl`.
    ///
    /// # Errors
    /// The server cannot be reached, has no JetStream, or refuses the bucket.
    pub fn open(url: &str, ttl: Duration) -> Result<Self, StoreError> {
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
                runtime.block_on(serve(url, ttl, flag, inbox, ready));
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
        let batch = writes.iter().map(|write| Write { sensor_id: key(&write.sensor_id), ..write.clone() }).collect();
        self.ask(REPLY_TIMEOUT, |reply| Request::Save(batch, reply))
    }

    fn shared(&self) -> bool {
        true
    }
}

/// The client's thread: connects, opens the bucket, then answers requests until the store is dropped.
async fn serve(
    url: String,
    ttl: Duration,
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
            .connect(url.as_str())
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
            ..Default::default()
        };
        js.get_or_create_stream(config).await.map_err(|e| failed("cannot make the state bucket", e))?;
        let bucket = js.get_key_value(NATS_BUCKET).await.map_err(|e| failed("cannot open the state bucket", e))?;
        Ok::<_, StoreError>((bucket, max_payload))
    }
    .await;
    let (bucket, max_payload) = match opened {
        Ok(opened) => {
            connected.store(true, Ordering::Relaxed);
            let _ = ready.send(Ok(()));
            opened
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
                let loaded = bucket
                    .entry(key)
                    .await
                    .map(|entry| {
                        entry
                            .filter(|entry| entry.operation == Operation::Put)
                            .map(|entry| Stored { value: entry.value.to_vec(), revision: entry.revision })
                    })
                    .map_err(|e| failed("cannot read the state", e));
                let _ = reply.send(loaded);
            }
            Request::Save(batch, reply) => {
                let _ = reply.send(save(&bucket, max_payload, batch).await);
            }
        }
    }
}

/// Writes each value with its compare-and-set: `update` on the revision expected, `create` when none is, `put`
/// when anything goes. A value over the server's maximum payload, or a failed write, fails the batch (the writes
/// before it stand, as with any store error: the states are then re-saved in full by the next save).
async fn save(bucket: &kv::Store, max_payload: usize, batch: Vec<Write>) -> Result<Vec<Written>, StoreError> {
    let mut written = Vec::with_capacity(batch.len());
    for Write { sensor_id: key, value, expect } in batch {
        if value.len() > max_payload.saturating_sub(1_024) {
            return Err(StoreError(format!(
                "a state of {} bytes is over the server's maximum payload ({max_payload} bytes)",
                value.len()
            )));
        }
        let outcome = match expect {
            Expect::Any => bucket.put(key, value.into()).await.map(Written::Saved).map_err(|e| e.to_string()),
            Expect::Absent => match bucket.create(key, value.into()).await {
                Ok(revision) => Ok(Written::Saved(revision)),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(Written::Superseded),
                Err(e) => Err(e.to_string()),
            },
            Expect::Revision(revision) => match bucket.update(key, value.into(), revision).await {
                Ok(revision) => Ok(Written::Saved(revision)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Written::Superseded),
                Err(e) => Err(e.to_string()),
            },
        };
        written.push(outcome.map_err(|e| failed("cannot save a state", e))?);
    }
    Ok(written)
}
