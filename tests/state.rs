//! Durable sensor state (`--state-dir`) through real servers: a sensor's rules and windows outlive its stream and
//! the server, so a restart neither re-learns nor re-fires; without a store, state lives with its stream.

mod common;

use std::{
    path::Path,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use alertstream::{
    clock::{Clock, ManualClock},
    config::ServeConfig,
    pb,
    state_store::{
        EmbeddedStore, NATS_BUCKET, NatsStore, SensorStates, StateStore, StoreError, Stored, Write, Written,
    },
    telemetry::Telemetry,
};
use common::{
    TestServer,
    binary::Binary,
    brief,
    daemon::{Daemon, free_port, nats_cluster, nats_server},
    reading,
};

const RULES: &str = "[[rule]]\nname = \"hot\"\ncondition = \"t > 100\"\n\n\
                     [[rule]]\nname = \"spike\"\ncondition = \"zscore(t) > 3\"\n";

/// A server with the rules above, keeping sensor states in `dir` when it is given.
async fn server(dir: Option<&Path>) -> TestServer {
    match dir {
        Some(dir) => server_on(Arc::new(embedded(dir, Clock::System)), RULES, ServeConfig::default()).await,
        None => {
            TestServer::with(alertstream_rules::parse("state.toml", RULES).unwrap().rules, ServeConfig::default()).await
        }
    }
}

/// The embedded store in `dir`, keeping states a week, on `clock`.
fn embedded(dir: &Path, clock: Clock) -> EmbeddedStore {
    EmbeddedStore::open(dir, Duration::from_secs(7 * 86_400), clock).unwrap()
}

/// A server with the rules `rules` and `config`, keeping sensor states in `store` (saving every minute while a
/// stream is open, counted on `config`'s telemetry).
async fn server_on(store: Arc<dyn StateStore>, rules: &str, config: ServeConfig) -> TestServer {
    let states = SensorStates::new(store, Duration::from_secs(60), config.telemetry.clone()).unwrap();
    let rules = alertstream_rules::parse("state.toml", rules).unwrap().rules;
    TestServer::with(rules, ServeConfig { states, ..config }).await
}

/// A nats-server with JetStream on a free loopback port: its scratch directory and the process (both kept until
/// dropped) and its URL.
async fn nats() -> (tempfile::TempDir, Daemon, String) {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let daemon = nats_server(addr, dir.path()).await;
    (dir, daemon, format!("nats://{addr}"))
}

/// A NATS store at `url`, keeping states a day, one copy of each.
fn nats_store(url: &str) -> NatsStore {
    NatsStore::open(url, Duration::from_secs(86_400), 1).unwrap()
}

/// `alertstream_state_saves_total{result}` as `telemetry` counts it.
fn saves(telemetry: &Telemetry, result: &str) -> f64 {
    let text = telemetry.render().unwrap();
    let series = format!("alertstream_state_saves_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(series.as_str())?.parse::<f64>().ok()).unwrap_or(0.0)
}

/// Waits (bounded) until `telemetry` counts `count` states saved: the writer thread commits them, on real time.
async fn until_saved(telemetry: &Telemetry, count: f64) {
    for _ in 0..400 {
        if saves(telemetry, "saved") >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{count} states were never saved: {}", telemetry.render().unwrap());
}

/// Streams `readings` of sensor `press-1` (seq, t) on one stream to its end.
async fn stream(server: &TestServer, readings: &[(u64, f64)]) -> Vec<String> {
    let readings: Vec<pb::Reading> = readings.iter().map(|&(seq, t)| reading("press-1", seq, &[("t", t)])).collect();
    let (alerts, status) = common::stream_all(&mut server.client().await, readings).await;
    status.unwrap();
    alerts.iter().map(brief).collect()
}

/// Shuts `server` down and waits until it has finished (its states saved and its store closed).
async fn stop(mut server: TestServer) {
    server.drain.cancel();
    (&mut server.handle).await.unwrap().unwrap();
}

/// Streams `readings` of `press-1` through a server process to the end of the stream.
async fn stream_to(process: &Binary, readings: &[(u64, f64)]) -> Vec<String> {
    let readings: Vec<pb::Reading> = readings.iter().map(|&(seq, t)| reading("press-1", seq, &[("t", t)])).collect();
    let mut client = pb::alert_service_client::AlertServiceClient::new(process.channel().await);
    let (alerts, status) = common::stream_all(&mut client, readings).await;
    status.unwrap();
    alerts.iter().map(brief).collect()
}

/// Twenty readings around 20 (the z-score learns), then 150: both rules fire; another 150 keeps them firing.
fn first_run() -> Vec<(u64, f64)> {
    let mut readings: Vec<(u64, f64)> = (1..=20).map(|seq| (seq, 20.0 + (seq % 3) as f64)).collect();
    readings.extend([(21, 150.0), (22, 150.0)]);
    readings
}

#[tokio::test]
async fn a_restarted_server_neither_relearns_nor_refires() {
    let dir = tempfile::tempdir().unwrap();
    let first = server(Some(dir.path())).await;
    assert_eq!(stream(&first, &first_run()).await, ["press-1 21 hot FIRING", "press-1 21 spike FIRING"]);
    stop(first).await;

    // A new process on the same state directory: the sensor's next stream goes on where the last one ended. `hot`
    // is still firing (no second FIRING for 150), and the z-score still knows the history (20 is ordinary: `spike`
    // resolves at once, where a fresh one would still be warming up).
    let second = server(Some(dir.path())).await;
    assert_eq!(
        stream(&second, &[(23, 150.0), (24, 20.0)]).await,
        ["press-1 24 hot RESOLVED", "press-1 24 spike RESOLVED"]
    );
    stop(second).await;

    // A new stream on the same server restores too: the state saved as the last stream ended. The z-score has
    // now seen 150 twice, so a third is less surprising (no `spike`); `hot` fires once and stays firing across
    // the next stream.
    let third = server(Some(dir.path())).await;
    assert_eq!(stream(&third, &[(25, 150.0)]).await, ["press-1 25 hot FIRING"]);
    assert_eq!(stream(&third, &[(26, 150.0), (27, 20.0)]).await, ["press-1 27 hot RESOLVED"]);
    stop(third).await;
}

#[tokio::test]
async fn without_a_store_state_lives_and_dies_with_its_stream() {
    let first = server(None).await;
    assert_eq!(stream(&first, &first_run()).await, ["press-1 21 hot FIRING", "press-1 21 spike FIRING"]);
    // The next stream starts fresh: `hot` fires again, the z-score warms up again.
    assert_eq!(stream(&first, &[(23, 150.0), (24, 20.0)]).await, ["press-1 23 hot FIRING", "press-1 24 hot RESOLVED"]);
    stop(first).await;
}

#[tokio::test]
async fn states_saved_as_a_stream_ends_survive_a_kill_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let state_dir = dir.path().join("state");
    let (rules, state_dir) = (rules.to_str().unwrap(), state_dir.to_str().unwrap());
    let args = ["--rules", rules, "--state-dir", state_dir, "--metrics-listen", "127.0.0.1:0"];

    let mut first = Binary::start(&args);
    assert_eq!(stream_to(&first, &first_run()).await, ["press-1 21 hot FIRING", "press-1 21 spike FIRING"]);
    // The save is committed by the writer thread soon after the stream ends: polled through the metrics.
    let metrics = first.metrics_addr().await;
    let saved = "alertstream_state_saves_total{result=\"saved\"}";
    let mut committed = false;
    for _ in 0..200 {
        let (_, _, body) = common::http_get(metrics, "/metrics").await;
        if common::samples(&body).get(saved).is_some_and(|&n| n >= 1.0) {
            committed = true;
            break;
        }
        // A real process's writer thread: polled, bounded, no span asserted.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(committed, "the sensor's state was never saved");
    // No graceful shutdown: the process is killed, as a crash would end it.
    first.signal("KILL");
    first.exit_code().await;

    let second = Binary::start(&args);
    assert_eq!(
        stream_to(&second, &[(23, 150.0), (24, 20.0)]).await,
        ["press-1 24 hot RESOLVED", "press-1 24 spike RESOLVED"]
    );
}

/// A store behind a gate: its state writer's saves wait until the test opens it, as a slow disk or a slow link to
/// NATS would make them (a stream's own take-over write, on its task, goes through).
struct Gated<S> {
    store: S,
    open: Mutex<bool>,
    opened: Condvar,
}

impl<S> Gated<S> {
    fn new(store: S) -> Arc<Self> {
        Arc::new(Self { store, open: Mutex::new(false), opened: Condvar::new() })
    }

    fn open_gate(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl<S: StateStore> StateStore for Gated<S> {
    fn load(&self, sensor_id: &str) -> Result<Option<Stored>, StoreError> {
        self.store.load(sensor_id)
    }

    fn save(&self, states: &[Write]) -> Result<Vec<Written>, StoreError> {
        if std::thread::current().name() == Some("alertstream-state") {
            let open = self.open.lock().unwrap();
            drop(self.opened.wait_while(open, |open| !*open).unwrap());
        }
        self.store.save(states)
    }

    fn shared(&self) -> bool {
        self.store.shared()
    }
}

#[tokio::test]
async fn a_sensor_that_streams_again_at_once_finds_the_state_its_last_stream_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path(), Clock::System);
    let gated = Gated::new(store);
    let server = server_on(Arc::clone(&gated) as Arc<dyn StateStore>, RULES, ServeConfig::default()).await;
    assert_eq!(stream(&server, &first_run()).await, ["press-1 21 hot FIRING", "press-1 21 spike FIRING"]);
    // Stream after stream, each opened as soon as the last one ended, while no save can reach the store: each
    // restores the state its predecessor left, and `hot` never fires again. (`spike` resolves along the way, as
    // 150 becomes ordinary for the z-score.)
    for seq in 23..33 {
        let alerts = stream(&server, &[(seq, 150.0)]).await;
        assert!(!alerts.iter().any(|a| a.contains(" hot ")), "stream of reading {seq}: {alerts:?}");
    }
    gated.open_gate();
    stop(server).await;
}

/// The embedded store, counting the loads and saves that reach it.
struct CountingStore {
    store: EmbeddedStore,
    loads: AtomicUsize,
    saves: AtomicUsize,
}

impl CountingStore {
    fn new(store: EmbeddedStore) -> Arc<Self> {
        Arc::new(Self { store, loads: AtomicUsize::new(0), saves: AtomicUsize::new(0) })
    }
}

impl StateStore for CountingStore {
    fn load(&self, sensor_id: &str) -> Result<Option<Stored>, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.store.load(sensor_id)
    }

    fn save(&self, states: &[Write]) -> Result<Vec<Written>, StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.store.save(states)
    }
}

#[tokio::test]
async fn an_open_stream_saves_its_sensors_every_save_interval() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let counting = CountingStore::new(embedded(dir.path(), Clock::Manual(clock.clone())));
    let config = ServeConfig { clock: Clock::Manual(clock.clone()), ..ServeConfig::default() };
    let hot = "[[rule]]\nname = \"hot\"\ncondition = \"t > 100\"\n";
    let server = server_on(Arc::clone(&counting) as Arc<dyn StateStore>, hot, config).await;
    let (tx, mut alerts) = common::open_stream(server.channel().await).await;
    // 1,023 quiet readings, then one hot one: the stream looks at the clock on its 1,024th reading. The save
    // interval has not passed yet: nothing is saved.
    let send_batch = |first: u64| {
        let tx = tx.clone();
        async move {
            for seq in first..first + 1_023 {
                tx.send(reading("press-1", seq, &[("t", 1.0)])).await.unwrap();
            }
            tx.send(reading("press-1", first + 1_023, &[("t", 150.0)])).await.unwrap();
        }
    };
    send_batch(1).await;
    assert_eq!(brief(&common::next_alert(&mut alerts).await), "press-1 1024 hot FIRING");
    assert_eq!(counting.saves.load(Ordering::SeqCst), 0);
    // A minute later, the next 1,024th reading saves, while the stream stays open.
    clock.advance(Duration::from_secs(61));
    for seq in 1_025..2_048 {
        tx.send(reading("press-1", seq, &[("t", 1.0)])).await.unwrap();
    }
    assert_eq!(brief(&common::next_alert(&mut alerts).await), "press-1 1025 hot RESOLVED");
    tx.send(reading("press-1", 2_048, &[("t", 150.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut alerts).await), "press-1 2048 hot FIRING");
    for _ in 0..400 {
        if counting.saves.load(Ordering::SeqCst) > 0 {
            break;
        }
        // The writer thread commits when it commits: polled, bounded, no span asserted.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(counting.saves.load(Ordering::SeqCst), 1, "one save while the stream is open");
    drop(tx);
}

#[tokio::test]
async fn of_two_streams_of_one_sensor_the_newer_one_saves_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(Some(dir.path())).await;
    // An older stream fires `hot` and stays open, as a client's connection that went quiet would.
    let (old_tx, mut old_alerts) = common::open_stream(server.channel().await).await;
    old_tx.send(reading("press-1", 1, &[("t", 150.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut old_alerts).await), "press-1 1 hot FIRING");
    // The sensor reconnects on a newer stream, which takes it up: its state is not firing when that stream ends.
    let (new_tx, mut new_alerts) = common::open_stream(server.channel().await).await;
    new_tx.send(reading("press-1", 2, &[("t", 20.0)])).await.unwrap();
    new_tx.send(reading("press-1", 3, &[("t", 150.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut new_alerts).await), "press-1 3 hot FIRING");
    new_tx.send(reading("press-1", 4, &[("t", 20.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut new_alerts).await), "press-1 4 hot RESOLVED");
    drop(new_tx);
    assert!(new_alerts.message().await.unwrap().is_none());
    // The older stream ends after it, still firing: its state must not replace the newer one's.
    drop(old_tx);
    assert!(old_alerts.message().await.unwrap().is_none());
    // The next stream goes on from the newer stream's state: not firing, so 150 fires.
    assert_eq!(stream(&server, &[(5, 150.0)]).await, ["press-1 5 hot FIRING"]);
    stop(server).await;
}

#[tokio::test]
async fn an_invalid_reading_of_a_new_sensor_costs_no_store_read() {
    let dir = tempfile::tempdir().unwrap();
    let counting = CountingStore::new(embedded(dir.path(), Clock::System));
    let server = server_on(Arc::clone(&counting) as Arc<dyn StateStore>, RULES, ServeConfig::default()).await;
    // Ten new sensors, each with a reading the engine refuses (no values): no claim, no read of the store.
    let invalid: Vec<pb::Reading> = (1..=10).map(|i| reading(&format!("bad-{i}"), i, &[])).collect();
    let (alerts, status) = common::stream_all(&mut server.client().await, invalid).await;
    status.unwrap();
    assert!(alerts.iter().all(|a| a.rule == "invalid_reading") && alerts.len() == 10, "{alerts:?}");
    assert_eq!(counting.loads.load(Ordering::SeqCst), 0);
    // A valid one does read it.
    assert_eq!(stream(&server, &[(1, 20.0)]).await, Vec::<String>::new());
    assert_eq!(counting.loads.load(Ordering::SeqCst), 1);
    stop(server).await;
}

/// The embedded store, failing its first saves (a full disk, say).
struct FailingStore {
    store: EmbeddedStore,
    failures_left: AtomicUsize,
}

impl StateStore for FailingStore {
    fn load(&self, sensor_id: &str) -> Result<Option<Stored>, StoreError> {
        self.store.load(sensor_id)
    }

    fn save(&self, states: &[Write]) -> Result<Vec<Written>, StoreError> {
        if self.failures_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(StoreError("no space left on device".to_owned()));
        }
        self.store.save(states)
    }
}

#[tokio::test]
async fn a_save_the_store_refuses_is_tried_again_until_it_lands() {
    let dir = tempfile::tempdir().unwrap();
    let failing =
        Arc::new(FailingStore { store: embedded(dir.path(), Clock::System), failures_left: AtomicUsize::new(2) });
    let telemetry = Telemetry::on();
    let config = ServeConfig { telemetry: telemetry.clone(), ..ServeConfig::default() };
    let server = server_on(Arc::clone(&failing) as Arc<dyn StateStore>, RULES, config).await;
    assert_eq!(stream(&server, &first_run()).await, ["press-1 21 hot FIRING", "press-1 21 spike FIRING"]);
    // The stream's save fails twice, then lands.
    until_saved(&telemetry, 1.0).await;
    assert_eq!((saves(&telemetry, "error"), saves(&telemetry, "saved")), (2.0, 1.0));
    assert!(failing.store.load("press-1").unwrap().is_some(), "the state is in the store");
    stop(server).await;
}

#[tokio::test]
async fn replicas_share_sensor_states_through_a_nats_key_value_bucket() {
    let (_dir, _daemon, url) = nats().await;
    let replica = |telemetry: Telemetry| {
        server_on(Arc::new(nats_store(&url)), RULES, ServeConfig { telemetry, ..ServeConfig::default() })
    };
    // Two replicas at once, one bucket.
    let telemetry = Telemetry::on();
    let (first, second) = (replica(telemetry.clone()).await, replica(Telemetry::off()).await);
    assert_eq!(stream(&first, &first_run()).await, ["press-1 21 hot FIRING", "press-1 21 spike FIRING"]);
    // The sensor's next stream reaches the other replica: it goes on from the state the first saved (committed
    // soon after the stream ends).
    until_saved(&telemetry, 1.0).await;
    assert_eq!(
        stream(&second, &[(23, 150.0), (24, 20.0)]).await,
        ["press-1 24 hot RESOLVED", "press-1 24 spike RESOLVED"]
    );
    stop(first).await;
    stop(second).await;
}

#[tokio::test]
async fn the_newer_stream_of_a_sensor_wins_across_replicas() {
    let (_dir, _daemon, url) = nats().await;
    let replica = |config: ServeConfig| server_on(Arc::new(nats_store(&url)), RULES, config);
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let older_telemetry = Telemetry::on();
    let older = replica(ServeConfig {
        telemetry: older_telemetry.clone(),
        clock: Clock::Manual(clock.clone()),
        ..Default::default()
    })
    .await;
    let newer = replica(ServeConfig::default()).await;

    // A stream of press-1 on one replica: `hot` fires, and a periodic save puts that in the bucket.
    let (older_tx, mut older_alerts) = common::open_stream(older.channel().await).await;
    for (seq, t) in [(1, 20.0), (2, 150.0)] {
        older_tx.send(reading("press-1", seq, &[("t", t)])).await.unwrap();
    }
    assert_eq!(brief(&common::next_alert(&mut older_alerts).await), "press-1 2 hot FIRING");
    clock.advance(Duration::from_secs(60));
    until_saved(&older_telemetry, 1.0).await;
    // The sensor's newer stream reaches the other replica (the client gave up on the first connection while it
    // stays open): it takes the sensor over from the bucket, and 20 resolves `hot` there.
    let (newer_tx, mut newer_alerts) = common::open_stream(newer.channel().await).await;
    newer_tx.send(reading("press-1", 3, &[("t", 20.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut newer_alerts).await), "press-1 3 hot RESOLVED");
    // The older stream ends first, then the newer: the older one's save fails its compare-and-set (the take-over
    // wrote the key since), and the newer one's state stands. Without the take-over's write, the older save would
    // land, and the newer one fail.
    for (tx, alerts) in [(older_tx, older_alerts), (newer_tx, newer_alerts)] {
        drop(tx);
        let (rest, status) = common::collect(alerts).await;
        status.unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }
    stop(older).await;
    stop(newer).await;
    assert_eq!(saves(&older_telemetry, "superseded"), 1.0);
    // The sensor's next stream, on a third replica, goes on from the newer state: `hot` is not firing there, so
    // 150 fires it (from the older state, still firing, it would not).
    let third = replica(ServeConfig::default()).await;
    let alerts = stream(&third, &[(4, 150.0)]).await;
    assert!(alerts.contains(&"press-1 4 hot FIRING".to_owned()), "{alerts:?}");
    stop(third).await;
}

#[tokio::test]
async fn a_state_larger_than_a_nats_message_is_saved_in_chunks() {
    let (_dir, _daemon, url) = nats().await;
    // A window of 60,000 readings (24 bytes each): about 1.4 MB, over NATS' default maximum payload of 1 MiB.
    let rules = "[[rule]]\nname = \"cold\"\ncondition = \"avg(t, 100000) < 50\"\n";
    let telemetry = Telemetry::on();
    let replica = |telemetry: Telemetry| {
        server_on(Arc::new(nats_store(&url)), rules, ServeConfig { telemetry, ..ServeConfig::default() })
    };
    let first = replica(telemetry.clone()).await;
    assert_eq!(stream(&first, &(1..=60_000).map(|seq| (seq, 100.0)).collect::<Vec<_>>()).await, Vec::<String>::new());
    stop(first).await;
    let text = telemetry.render().unwrap();
    assert_eq!(saves(&telemetry, "saved"), 1.0, "{text}");
    // Another replica goes on with the whole window: one reading of 0 leaves the average near 100 (a fresh window's
    // would be 0, and fire).
    let second = replica(Telemetry::off()).await;
    assert_eq!(stream(&second, &[(60_001, 0.0)]).await, Vec::<String>::new());
    assert_eq!(stream(&second, &[(60_002, 0.0)]).await, Vec::<String>::new());
    stop(second).await;
    // Four chunked writes (the first save, the take-over, two stream ends): only the last one's chunks are left,
    // two of them, beside the sensor's key.
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let mut bucket = async_nats::jetstream::new(client).get_stream(format!("KV_{NATS_BUCKET}")).await.unwrap();
    assert_eq!(bucket.info().await.unwrap().state.messages, 3);
}

#[tokio::test]
async fn a_sensor_back_on_a_replica_goes_on_from_the_state_another_replica_saved_since() {
    let (_dir, _daemon, url) = nats().await;
    let open = || nats_store(&url);
    let gated = Gated::new(open());
    let first = server_on(Arc::clone(&gated) as Arc<dyn StateStore>, RULES, ServeConfig::default()).await;
    let second = server_on(Arc::new(open()), RULES, ServeConfig::default()).await;
    // On the first replica `hot` fires, and the stream ends; its save waits (the gate is shut: the state is only
    // queued there).
    assert_eq!(stream(&first, &[(1, 150.0)]).await, ["press-1 1 hot FIRING"]);
    // The sensor moves to the second replica, which starts it fresh, fires and resolves `hot`, and saves.
    assert_eq!(stream(&second, &[(2, 150.0), (3, 20.0)]).await, ["press-1 2 hot FIRING", "press-1 3 hot RESOLVED"]);
    stop(second).await;
    // Back on the first replica: the store has a later state, from the other replica, than the one queued here.
    // The sensor goes on from that one (`hot` resolved, so 150 fires it); from the queued one it would not fire.
    let (tx, mut alerts) = common::open_stream(first.channel().await).await;
    tx.send(reading("press-1", 4, &[("t", 150.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut alerts).await), "press-1 4 hot FIRING");
    // The queued state, older, is never written over the newer one.
    gated.open_gate();
    tx.send(reading("press-1", 5, &[("t", 20.0)])).await.unwrap();
    drop(tx);
    let (rest, status) = common::collect(alerts).await;
    status.unwrap();
    assert_eq!(rest.iter().map(brief).collect::<Vec<_>>(), ["press-1 5 hot RESOLVED"]);
    stop(first).await;
    let third = server_on(Arc::new(open()), RULES, ServeConfig::default()).await;
    // The last state saved is the first replica's second stream's: `hot` resolved at 5.
    assert_eq!(stream(&third, &[(6, 150.0)]).await, ["press-1 6 hot FIRING"]);
    stop(third).await;
}

#[tokio::test]
async fn sensor_states_kept_three_times_on_a_jetstream_cluster_outlive_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = nats_cluster(dir.path()).await;
    let url = cluster.url();
    // A bucket of three replicas is refused for a moment after the cluster forms (until every node has joined
    // its meta group): opened in a bounded retry, as a supervisor would restart a server refused at startup.
    let store = || async {
        let mut refused = None;
        for _ in 0..300 {
            match NatsStore::open(&url, Duration::from_secs(86_400), 3) {
                Ok(store) => return store,
                Err(error) => refused = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the bucket was never made: {refused:?}");
    };
    let telemetry = Telemetry::on();
    let first =
        server_on(Arc::new(store().await), RULES, ServeConfig { telemetry: telemetry.clone(), ..Default::default() })
            .await;
    assert_eq!(stream(&first, &first_run()).await, ["press-1 21 hot FIRING", "press-1 21 spike FIRING"]);
    stop(first).await;
    assert_eq!(saves(&telemetry, "saved"), 1.0);

    // The node that leads the bucket's stream dies; the other two elect a new leader and still hold the state.
    let client = async_nats::connect(cluster.addrs[0].to_string()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let bucket = format!("KV_{NATS_BUCKET}");
    let leader = |info: async_nats::jetstream::stream::Info| info.cluster.and_then(|c| c.leader);
    let killed = leader(js.get_stream(&bucket).await.unwrap().info().await.unwrap().clone()).expect("a leader");
    assert_eq!(js.get_stream(&bucket).await.unwrap().info().await.unwrap().config.num_replicas, 3);
    cluster.kill(&killed);
    let survivor = cluster.running()[0];
    let js = async_nats::jetstream::new(async_nats::connect(survivor.to_string()).await.unwrap());
    let mut elected = false;
    for _ in 0..300 {
        if let Ok(mut stream) = js.get_stream(&bucket).await
            && let Ok(info) = stream.info().await
            && leader(info.clone()).is_some_and(|now| now != killed)
        {
            elected = true;
            break;
        }
        // Real processes electing a leader: polled, bounded.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(elected, "the bucket's stream never had a new leader");
    // A server on the same node list goes on from the saved state: `hot` still firing, the z-score's history kept.
    let second = server_on(Arc::new(store().await), RULES, ServeConfig::default()).await;
    assert_eq!(
        stream(&second, &[(23, 150.0), (24, 20.0)]).await,
        ["press-1 24 hot RESOLVED", "press-1 24 spike RESOLVED"]
    );
    stop(second).await;
}

#[test]
fn an_embedded_and_a_nats_store_together_are_a_startup_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_alertstream"))
        .args(["serve", "--state-dir", "/tmp/unused-state", "--state-store", "nats://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--state-dir") && stderr.contains("cannot be used with"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_nats_store_never_stops_a_stream() {
    let (_dir, daemon, url) = nats().await;
    let store = nats_store(&url);
    let telemetry = Telemetry::on();
    let server =
        server_on(Arc::new(store), RULES, ServeConfig { telemetry: telemetry.clone(), ..Default::default() }).await;
    // NATS goes away: new sensors start fresh, their alerts come, and the failed loads are counted.
    drop(daemon);
    let readings: Vec<pb::Reading> = (1..=3).map(|i| reading(&format!("press-{i}"), i, &[("t", 150.0)])).collect();
    let (alerts, status) = common::stream_all(&mut server.client().await, readings).await;
    status.unwrap();
    assert_eq!(
        alerts.iter().map(brief).collect::<Vec<_>>(),
        ["press-1 1 hot FIRING", "press-2 2 hot FIRING", "press-3 3 hot FIRING"]
    );
    let text = telemetry.render().unwrap();
    let errors: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("alertstream_state_loads_total{result=\"error\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(errors, 3.0, "{text}");
    stop(server).await;
}
