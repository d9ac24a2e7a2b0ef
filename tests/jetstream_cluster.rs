//! Alerts through a JetStream cluster: three Debian `nats-server` processes (`/usr/sbin/nats-server -js`, 2.9.10)
//! routed to each other on loopback, one stream of three replicas made by the test, and two alertstream servers in
//! this process, each with a NATS sink whose `url` lists the three nodes. Readings of many sensors stream through
//! both servers while the stream's leader node is killed mid-run; a downstream reader of the stream then finds every
//! alert the two servers sent their gRPC clients exactly once: none lost to the failover (the sinks retry and
//! reconnect to a node still up), none doubled by a resend. One sensor's readings go to both servers alike, so both
//! publish its alerts under the same `Nats-Msg-Id`: JetStream's duplicate window stores each of them once.

mod common;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use alertstream::{
    config::ServeConfig,
    pb,
    sinks::{SinkOptions, Sinks},
    telemetry::Telemetry,
};
use async_nats::jetstream::{self, stream::Stream};
use common::{TestServer, daemon::nats_cluster, next_alert, open_stream, reading};
use serde_json::Value;

/// The stream the alerts go to, made by the test with three replicas.
const STREAM: &str = "ALERTS";
/// Sensors of each server's own.
const SENSORS: usize = 8;
/// Readings per sensor; each makes one alert (FIRING and RESOLVED by turns).
const ROUNDS: u64 = 12;
/// The stream's leader node is killed once this many rounds are sent.
const KILL_AFTER: u64 = 6;
/// The sensor whose every reading goes to both servers, seq and time alike.
const SHARED: &str = "shared-1";

/// What makes an alert: (sensor, rule, state, reading seq).
type Key = (String, String, String, u64);

fn key(alert: &pb::Alert) -> Key {
    let state = pb::AlertState::try_from(alert.state).unwrap().as_str_name().to_owned();
    (alert.sensor_id.clone(), alert.rule.clone(), state, alert.reading_seq)
}

/// The key of an alert as the sink published it (proto3 JSON: the seq a string).
fn json_key(alert: &Value) -> Key {
    let text = |field: &str| alert[field].as_str().unwrap_or_else(|| panic!("no {field} in {alert}")).to_owned();
    (text("sensor_id"), text("rule"), text("state"), text("reading_seq").parse().unwrap())
}

/// Makes the alerts' stream over `alertstream.alerts.>` with three replicas and a two-minute duplicate window, in a
/// bounded retry: the cluster refuses a stream of three replicas until every node has joined its meta group.
async fn make_stream(js: &jetstream::Context) -> Stream {
    let config = jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["alertstream.alerts.>".to_owned()],
        num_replicas: 3,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let mut last = None;
    for _ in 0..300 {
        match js.create_stream(config.clone()).await {
            Ok(stream) => return stream,
            Err(e) => last = Some(e),
        }
        // Real processes forming a cluster: polled, bounded.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the cluster never made a stream of three replicas: {last:?}");
}

/// A server in this process with the embedded default rules and one NATS sink publishing to `url` into the stream
/// the test made.
async fn replica(url: &str) -> TestServer {
    let rules = format!(
        "{}\n[[sink]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"{url}\"\nstream = \"{STREAM}\"\n",
        alertstream::config::DEFAULT_RULES
    );
    let file = alertstream_rules::parse("nats.toml", &rules).unwrap();
    let sinks = Sinks::new(Telemetry::off(), SinkOptions::default());
    sinks.apply(&file.sinks, &file.rules).unwrap();
    TestServer::with(file.rules, ServeConfig { sinks, ..ServeConfig::default() }).await
}

/// One gRPC stream to a server, with what it answered so far.
struct Client {
    readings: tokio::sync::mpsc::Sender<pb::Reading>,
    alerts: tonic::Streaming<pb::Alert>,
    got: Vec<Key>,
}

impl Client {
    async fn open(server: &TestServer) -> Self {
        let (readings, alerts) = open_stream(server.channel().await).await;
        Self { readings, alerts, got: Vec::new() }
    }

    /// Sends `sensor`'s reading `seq` (a temperature below 10 when `seq` is odd, above when even) and keeps the one
    /// alert it makes.
    async fn send(&mut self, sensor: &str, seq: u64) {
        let temperature = if seq % 2 == 1 { 5.0 } else { 15.0 };
        self.readings.send(reading(sensor, seq, &[("temperature", temperature)])).await.unwrap();
        self.got.push(key(&next_alert(&mut self.alerts).await));
    }
}

/// The stream as a reader finds it through the nodes at `addrs`, once it holds at least `count` messages (bounded):
/// each message's alert key and `Nats-Msg-Id`.
async fn stored(addrs: &[SocketAddr], count: usize) -> Vec<(Key, String)> {
    let urls: Vec<String> = addrs.iter().map(|a| format!("nats://{a}")).collect();
    let js = jetstream::new(async_nats::connect(urls).await.unwrap());
    let (mut held, mut seen) = (None, 0);
    for _ in 0..1_200 {
        // Errors while the cluster elects a new leader are tried again.
        if let Ok(mut stream) = js.get_stream(STREAM).await
            && let Ok(state) = stream.info().await.map(|info| info.state.clone())
        {
            seen = state.messages;
            if seen >= count as u64 {
                held = Some((stream, state));
                break;
            }
        }
        // The sinks delivering through a failover in other tasks: polled, bounded.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stream, state) = held.unwrap_or_else(|| panic!("the stream never held {count} messages, only {seen}"));
    let mut out = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()).unwrap_or_default();
        out.push((json_key(&serde_json::from_slice(&message.payload).unwrap()), id));
    }
    out
}

/// The stream's leader node, by server name.
async fn leader(stream: &mut Stream) -> String {
    let info = stream.info().await.unwrap();
    info.cluster.as_ref().and_then(|c| c.leader.clone()).expect("a stream of three replicas has a leader")
}

/// Shuts `server` down once its streams have ended; its sink has delivered everything by then.
async fn stop(mut server: TestServer) {
    server.drain.cancel();
    let done = tokio::time::timeout(Duration::from_secs(60), &mut server.handle).await;
    done.expect("the server shut down").unwrap().unwrap();
}

#[tokio::test]
async fn every_alert_of_two_replicas_reaches_a_jetstream_cluster_once_through_a_node_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = nats_cluster(dir.path()).await;
    let admin = jetstream::new(async_nats::connect(cluster.url().split(',').collect::<Vec<_>>()).await.unwrap());
    let mut stream = make_stream(&admin).await;
    let leader = leader(&mut stream).await;

    let (a, b) = (replica(&cluster.url()).await, replica(&cluster.url()).await);
    let (mut to_a, mut to_b) = (Client::open(&a).await, Client::open(&b).await);
    for seq in 1..=ROUNDS {
        if seq == KILL_AFTER + 1 {
            // Mid-run, the node that leads the stream goes: the other two elect a leader, the sinks' publishes fail
            // meanwhile and are retried, a sink connected to the dead node reconnects to another.
            cluster.kill(&leader);
        }
        for i in 0..SENSORS {
            to_a.send(&format!("a-{i}"), seq).await;
            to_b.send(&format!("b-{i}"), seq).await;
        }
        // The same reading to both: the same alert twice, under one Nats-Msg-Id.
        to_a.send(SHARED, seq).await;
        to_b.send(SHARED, seq).await;
    }

    // What the two servers' clients received; the shared sensor's alerts twice, once from each.
    let mut sent: HashMap<Key, usize> = HashMap::new();
    for key in to_a.got.iter().chain(&to_b.got) {
        *sent.entry(key.clone()).or_default() += 1;
    }
    let twice: Vec<&Key> = sent.iter().filter(|(_, n)| **n == 2).map(|(k, _)| k).collect();
    assert_eq!(twice.len(), ROUNDS as usize, "each shared alert came to both clients: {twice:?}");
    assert!(twice.iter().all(|(sensor, ..)| sensor == SHARED), "{twice:?}");
    assert!(sent.values().all(|n| *n <= 2));
    let mut expected: Vec<Key> = sent.into_keys().collect();
    expected.sort();
    assert_eq!(expected.len(), 2 * SENSORS * ROUNDS as usize + ROUNDS as usize);

    // Once the stream holds that many, the servers finish (their streams ended, their sinks flushed), so that
    // nothing more can come; then the stream is read whole.
    let survivors = cluster.running();
    stored(&survivors, expected.len()).await;
    drop((to_a, to_b));
    stop(a).await;
    stop(b).await;
    let held = stored(&survivors, expected.len()).await;

    let mut times: HashMap<&Key, usize> = HashMap::new();
    for (key, _) in &held {
        *times.entry(key).or_default() += 1;
    }
    let doubled: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<&Key> = expected.iter().filter(|key| !times.contains_key(key)).collect();
    let unsent: Vec<&&Key> = times.keys().filter(|key| expected.binary_search(key).is_err()).collect();
    assert!(
        doubled.is_empty() && missing.is_empty() && unsent.is_empty(),
        "every alert the servers sent, exactly once; stored more than once: {doubled:?}; missing: {missing:?}; \
         never sent: {unsent:?}"
    );
    assert_eq!(held.len(), expected.len());
    let mut ids: Vec<&String> = held.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), held.len(), "a distinct Nats-Msg-Id per message");
}
