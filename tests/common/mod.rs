//! Shared test harness: a real server on ephemeral loopback ports, and helpers to talk to it.
#![allow(dead_code, unreachable_pub)]

pub mod binary;
pub mod daemon;
pub mod frame_tap;
pub mod nginx;

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use alertstream::{
    config::{ServeConfig, default_rules},
    pb::{self, alert_service_client::AlertServiceClient},
    server::{Listeners, serve},
};
use alertstream_engine::RuleSet;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A server running in this process. Dropping it starts its shutdown.
pub struct TestServer {
    /// Publishes a new rule set to the server, as a reload does.
    pub rules: tokio::sync::watch::Sender<Arc<RuleSet>>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// Where `GET /metrics` is served, when the configuration turns metrics on.
    pub metrics_addr: Option<SocketAddr>,
    pub drain: CancellationToken,
    pub handle: JoinHandle<Result<(), alertstream::server::ServeError>>,
}

impl TestServer {
    /// Starts a server with the default rules and settings.
    pub async fn start() -> Self {
        Self::with(default_rules(), ServeConfig::default()).await
    }

    /// Starts a server with the rules of a rules file's text.
    pub async fn with_rules(text: &str) -> Self {
        let rules = alertstream_rules::parse("test.toml", text).expect("test rules are valid").rules;
        Self::with(rules, ServeConfig::default()).await
    }

    /// Starts a server; both listeners are bound before it runs, so no sleep is needed.
    pub async fn with(rules: RuleSet, config: ServeConfig) -> Self {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let drain = CancellationToken::new();
        let (rules, live) = tokio::sync::watch::channel(Arc::new(rules));
        let metrics = match config.telemetry.is_on() {
            true => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let metrics_addr = metrics.as_ref().map(|m| m.local_addr().unwrap());
        let listeners = Listeners { grpc: vec![grpc], http: vec![http], metrics: metrics.into_iter().collect() };
        let handle = tokio::spawn(serve(listeners, live, config, drain.clone()));
        Self { rules, grpc_addr, http_addr, metrics_addr, drain, handle }
    }

    /// A new connection to the server.
    pub async fn channel(&self) -> Channel {
        alertstream::client::endpoint(format!("http://{}", self.grpc_addr)).unwrap().connect().await.unwrap()
    }

    /// A client on a new connection.
    pub async fn client(&self) -> AlertServiceClient<Channel> {
        AlertServiceClient::new(self.channel().await)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.drain.cancel();
    }
}

/// A reading with the given seq and values, stamped `seq` seconds after the epoch.
pub fn reading(sensor: &str, seq: u64, values: &[(&str, f64)]) -> pb::Reading {
    pb::Reading {
        sensor_id: sensor.to_owned(),
        values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect::<HashMap<_, _>>(),
        time: Some(prost_types::Timestamp { seconds: seq as i64, nanos: 0 }),
        seq,
    }
}

/// An alert rendered compactly for exact sequence comparisons: `sensor seq rule STATE`.
pub fn brief(alert: &pb::Alert) -> String {
    let state = pb::AlertState::try_from(alert.state).unwrap().as_str_name().trim_start_matches("ALERT_STATE_");
    format!("{} {} {} {state}", alert.sensor_id, alert.reading_seq, alert.rule)
}

/// Sends every reading on one stream, half-closes, and collects every alert and the final status.
pub async fn stream_all(
    client: &mut AlertServiceClient<Channel>,
    readings: Vec<pb::Reading>,
) -> (Vec<pb::Alert>, Result<(), tonic::Status>) {
    let response = client.stream(tokio_stream::iter(readings)).await.expect("stream opens");
    collect(response.into_inner()).await
}

/// Reads a response stream to its end.
pub async fn collect(mut inbound: tonic::Streaming<pb::Alert>) -> (Vec<pb::Alert>, Result<(), tonic::Status>) {
    let mut alerts = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), inbound.message()).await.expect("stream makes progress") {
            Ok(Some(alert)) => alerts.push(alert),
            Ok(None) => return (alerts, Ok(())),
            Err(status) => return (alerts, Err(status)),
        }
    }
}

/// Opens a stream on `channel` whose readings the test sends one by one through the returned sender; dropping the
/// sender half-closes the stream.
pub async fn open_stream(channel: Channel) -> (tokio::sync::mpsc::Sender<pb::Reading>, tonic::Streaming<pb::Alert>) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let response =
        AlertServiceClient::new(channel).stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap();
    (tx, response.into_inner())
}

/// The next alert of a stream (bounded in time).
pub async fn next_alert(alerts: &mut tonic::Streaming<pb::Alert>) -> pb::Alert {
    tokio::time::timeout(Duration::from_secs(10), alerts.message()).await.expect("an alert in time").unwrap().unwrap()
}

/// One HTTP/1.1 GET over a new connection, as a probe or Prometheus makes it: the status, the response head (for
/// its headers) and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a complete HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, head.to_owned(), body.to_owned())
}

/// The metrics `server` serves (it must have them on), as Prometheus text, with each sample by `name{labels}`.
pub async fn scrape(server: &TestServer) -> (String, std::collections::BTreeMap<String, f64>) {
    let (status, head, body) = http_get(server.metrics_addr.expect("metrics are on"), "/metrics").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    let samples = samples(&body);
    (body, samples)
}

/// The samples of a Prometheus text exposition, by `name{labels}` (the labels in the order served).
pub fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// The alerts of a simulator run (proto3 JSON objects, one a line): some, of the default rules and the simulator's
/// sensors; per (sensor, rule) FIRING and RESOLVED alternate, starting with FIRING; per sensor, seqs never go back.
pub fn assert_simulated_alerts_consistent(alerts: &[serde_json::Value]) {
    assert!(!alerts.is_empty(), "the simulator's excursions fire rules");
    let mut firing: std::collections::HashMap<(String, String), bool> = std::collections::HashMap::new();
    let mut last_seq: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for alert in alerts {
        let sensor = alert["sensor_id"].as_str().unwrap().to_owned();
        let rule = alert["rule"].as_str().unwrap().to_owned();
        assert!(["temp_too_low", "ph_too_high"].contains(&rule.as_str()), "{alert}");
        assert!(["line-1", "line-2", "line-3", "line-4"].contains(&sensor.as_str()), "{alert}");
        let seq: u64 = alert["reading_seq"].as_str().unwrap().parse().unwrap();
        let previous = last_seq.insert(sensor.clone(), seq).unwrap_or(0);
        assert!(seq >= previous, "per-sensor order: {seq} after {previous}");
        let now_firing = alert["state"] == "ALERT_STATE_FIRING";
        let was_firing = firing.insert((sensor, rule), now_firing).unwrap_or(false);
        assert_ne!(was_firing, now_firing, "FIRING and RESOLVED alternate: {alert}");
    }
}

/// One alert as an application sees it: sensor, rule, state, reading seq.
pub type AlertKey = (String, String, String, u64);

/// Asserts that two runs show the same alerts, as multisets; else says which one lacks which (positive: missing
/// from `got`, negative: extra in it).
pub fn assert_same_alerts(got: &[AlertKey], expected: &[AlertKey]) {
    let count = |keys: &[AlertKey]| {
        let mut counts: std::collections::BTreeMap<AlertKey, i64> = std::collections::BTreeMap::new();
        for key in keys {
            *counts.entry(key.clone()).or_default() += 1;
        }
        counts
    };
    let (got_counts, mut differences) = (count(got), count(expected));
    for (key, n) in got_counts {
        *differences.entry(key).or_default() -= n;
    }
    differences.retain(|_, n| *n != 0);
    let shown: Vec<_> = differences.iter().take(20).collect();
    assert!(
        differences.is_empty(),
        "{} alerts differ from the uninterrupted run's (positive: missing, negative: extra): {shown:?}",
        differences.len()
    );
}
