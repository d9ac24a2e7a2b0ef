//! Replicas behind nginx: `deploy/nginx/alertstream.conf`, as it is, in front of three servers on loopback. Streams
//! spread over the replicas and every alert comes back; a replica added later (the upstream file rewritten, nginx
//! reloaded) receives streams once the others' connections reach their maximum age. Debian's nginx 1.22, installed
//! by `scripts/setup-tools.sh`.

mod common;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use alertstream::{
    clock::{Clock, ManualClock},
    config::ServeConfig,
    connections::ConnectionPolicy,
    pb,
};
use common::{TestServer, nginx::Nginx, open_stream, reading};

const AGE: Duration = Duration::from_secs(600);
const GRACE: Duration = Duration::from_secs(5);
/// Streams the test's sensors hold open through nginx.
const STREAMS: usize = 24;

/// A replica: a real server whose one rule answers every reading with its own name, so the client can tell which
/// replica served a stream, on a manual clock that ages its connections.
async fn replica(name: &str) -> (TestServer, ManualClock) {
    let rules = alertstream_rules::parse(
        "replica.toml",
        &format!("[[rule]]\nname = \"served\"\ncondition = \"t >= 0\"\nnotify = \"every\"\nmessage = \"{name}\"\n"),
    )
    .unwrap()
    .rules;
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let policy = ConnectionPolicy { max_age: Some(AGE), max_age_grace: GRACE, ..ServeConfig::default().connections };
    let config = ServeConfig { clock: Clock::Manual(clock.clone()), connections: policy, ..ServeConfig::default() };
    (TestServer::with(rules, config).await, clock)
}

/// One sensor's stream through nginx: its readings sender and its alerts.
struct SensorStream {
    sensor: String,
    readings: tokio::sync::mpsc::Sender<pb::Reading>,
    alerts: tonic::Streaming<pb::Alert>,
    seq: u64,
}

impl SensorStream {
    async fn open(nginx: SocketAddr, sensor: String) -> Self {
        let channel = alertstream::client::endpoint(format!("http://{nginx}")).unwrap().connect().await.unwrap();
        let (readings, alerts) = open_stream(channel).await;
        Self { sensor, readings, alerts, seq: 0 }
    }

    /// Sends one reading and returns the name of the replica that answered it.
    async fn exchange(&mut self) -> Result<String, tonic::Status> {
        self.seq += 1;
        // A stream that has ended takes no reading; its status comes with the next message.
        let _ = self.readings.send(reading(&self.sensor, self.seq, &[("t", 1.0)])).await;
        let alert = tokio::time::timeout(Duration::from_secs(20), self.alerts.message())
            .await
            .expect("an alert within 20 s")?
            .ok_or_else(|| tonic::Status::unavailable("the stream ended"))?;
        assert_eq!((alert.sensor_id.as_str(), alert.reading_seq), (self.sensor.as_str(), self.seq));
        Ok(alert.message)
    }
}

/// Opens a stream through nginx, retrying while nginx is not yet listening (a real process starting: polled).
async fn open_when_ready(nginx: &Nginx, sensor: String) -> (SensorStream, String) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(nginx.addr).await.is_ok() {
            let mut stream = SensorStream::open(nginx.addr, sensor.clone()).await;
            let replica = stream.exchange().await.unwrap_or_else(|e| panic!("{e}; nginx log:\n{}", nginx.log()));
            return (stream, replica);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not listen on {}; its log:\n{}", nginx.addr, nginx.log());
}

fn tally(names: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name.as_str()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_spread_over_replicas_behind_nginx_and_move_to_a_replica_added_later() {
    let mut replicas = Vec::new();
    for name in ["replica-1", "replica-2", "replica-3"] {
        replicas.push(replica(name).await);
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|(server, _)| server.grpc_addr).collect();
    let nginx = Nginx::start(&addrs);

    // Long-lived sensor streams, each held open: nginx spreads them over the three replicas, and every reading's
    // alert comes back through it.
    let mut streams = Vec::new();
    let mut served = Vec::new();
    for i in 0..STREAMS {
        let (stream, replica) = open_when_ready(&nginx, format!("sensor-{i}")).await;
        streams.push(stream);
        served.push(replica);
    }
    for stream in &mut streams {
        for _ in 0..3 {
            stream.exchange().await.unwrap();
        }
    }
    let first = tally(&served);
    assert_eq!(first.len(), 3, "every replica serves streams: {first:?}");
    assert!(first.values().all(|&n| n >= STREAMS / 6), "spread: {first:?}");

    // A fourth replica joins: the upstream file gains a line and nginx reloads. Streams already open stay where they
    // are; a probe stream shows when the reload has taken effect (least_conn sends it to the empty replica).
    let (added, _added_clock) = replica("replica-4").await;
    let mut all = addrs.clone();
    all.push(added.grpc_addr);
    nginx.reload_with(&all);
    let mut reached = false;
    for _ in 0..100 {
        let (mut probe, replica) = open_when_ready(&nginx, "probe".to_owned()).await;
        drop(probe.readings);
        while probe.alerts.message().await.ok().flatten().is_some() {}
        if replica == "replica-4" {
            reached = true;
            break;
        }
        // nginx's old worker still answers until the new one has taken over: polled.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "the reloaded nginx never sent a stream to the added replica; its log:\n{}", nginx.log());
    for stream in &mut streams {
        assert_ne!(stream.exchange().await.unwrap(), "replica-4", "an open stream does not move by itself");
    }

    // The first three replicas' connections reach their maximum age: their streams end UNAVAILABLE after the alerts
    // they owe. The sensors reconnect, as every client should, and some of the streams now reach the fourth.
    for (_, clock) in &replicas {
        clock.advance(AGE * 11 / 10 + GRACE);
    }
    let mut moved = Vec::new();
    for stream in &mut streams {
        let ended = loop {
            match stream.exchange().await {
                Ok(_) => continue,
                Err(status) => break status,
            }
        };
        assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
        let sensor = stream.sensor.clone();
        let (reopened, replica) = open_when_ready(&nginx, sensor).await;
        *stream = reopened;
        moved.push(replica);
    }
    for stream in &mut streams {
        stream.exchange().await.unwrap();
    }
    let after = tally(&moved);
    assert!(after.get("replica-4").is_some_and(|&n| n >= STREAMS / 8), "streams reach the added replica: {after:?}");
}
