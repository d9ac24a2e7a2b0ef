//! Sinks against real counterparts on loopback: a webhook receiver this test runs (an axum server recording what it
//! is sent) and JSON-lines files in a temporary directory; and what a sink does when its counterpart is away: it
//! retries until the alerts go through, and what it finally gives up on is counted.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use alertstream::{
    clock::{Clock, ManualClock},
    config::ServeConfig,
    pb,
    sinks::{SinkOptions, Sinks},
    state_store::{EmbeddedStore, NatsStore, SensorStates},
    telemetry::Telemetry,
};
use axum::{Router, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use common::{TestServer, reading, stream_all};
use serde_json::Value;

/// What the receiver was sent: each request's `authorization` header and its alerts.
#[derive(Default)]
struct Received {
    requests: AtomicUsize,
    /// Requests answered 503 before the receiver starts taking alerts.
    failures: usize,
    batches: Mutex<Vec<(Option<String>, Vec<Value>)>>,
}

async fn receive(State(received): State<Arc<Received>>, headers: HeaderMap, body: String) -> StatusCode {
    if received.requests.fetch_add(1, Ordering::SeqCst) < received.failures {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    let alerts = body["alerts"].as_array().expect("{\"alerts\": [...]}").clone();
    let authorization = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
    received.batches.lock().unwrap().push((authorization, alerts));
    StatusCode::OK
}

/// A webhook receiver on a loopback port that answers its first `failures` requests 503.
async fn receiver(failures: usize) -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received { failures, ..Received::default() });
    let app = Router::new().route("/hook", post(receive)).with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// A server with the default rules and the `[[sink]]` tables of `sinks`, its metrics on; sinks flush for at most
/// `flush`.
async fn server_with_sinks(sinks_text: &str, flush: Duration) -> (TestServer, Sinks, Telemetry) {
    let rules = format!("{}\n{sinks_text}", alertstream::config::DEFAULT_RULES);
    let file = alertstream_rules::parse("sinks.toml", &rules).unwrap_or_else(|e| panic!("{e}"));
    let telemetry = Telemetry::on();
    let sinks = Sinks::new(telemetry.clone(), SinkOptions { flush_timeout: flush, ..SinkOptions::default() });
    sinks.apply(&file.sinks, &file.rules).unwrap();
    let config = ServeConfig { sinks: sinks.clone(), telemetry: telemetry.clone(), ..ServeConfig::default() };
    (TestServer::with(file.rules, config).await, sinks, telemetry)
}

/// Readings of sensor `s` whose temperature crosses 10 every time: one temp_too_low alert each, FIRING then
/// RESOLVED in turn.
fn crossings(count: u64) -> Vec<pb::Reading> {
    (1..=count).map(|seq| reading("s", seq, &[("temperature", if seq % 2 == 1 { 5.0 } else { 15.0 })])).collect()
}

/// `rule state seq` of a proto3 JSON alert, or of a wire alert.
fn json_brief(alert: &Value) -> String {
    format!("{} {} {}", alert["rule"].as_str().unwrap(), alert["state"].as_str().unwrap(), alert["reading_seq"])
}

fn wire_brief(alert: &pb::Alert) -> String {
    let state = pb::AlertState::try_from(alert.state).unwrap().as_str_name();
    format!("{} {state} \"{}\"", alert.rule, alert.reading_seq)
}

/// The value of the metric line `series` (name and labels as rendered), or 0 when absent.
fn metric(telemetry: &Telemetry, series: &str) -> u64 {
    let text = telemetry.render().unwrap();
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0)
}

/// Waits (bounded, polling) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn a_webhook_gets_every_alert_with_its_secret_header_through_an_outage() {
    let (addr, received) = receiver(3).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "Bearer s3cret\n").unwrap();
    let sinks_text = format!(
        "[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\n\
         headers = {{ Authorization = \"file:{}\" }}\n",
        token.display()
    );
    let (server, _sinks, telemetry) = server_with_sinks(&sinks_text, Duration::from_secs(5)).await;
    let mut readings = crossings(6);
    // An event: it reaches the stream, and not this sink, which does not ask for events.
    readings.insert(3, reading("s", 100, &[("temperature", f64::NAN)]));
    let (alerts, status) = stream_all(&mut server.client().await, readings).await;
    status.unwrap();
    assert_eq!(alerts.len(), 7, "six crossings and an invalid_reading");
    let expected: Vec<String> =
        alerts.iter().filter(|a| a.rule != "invalid_reading").map(wire_brief).collect::<Vec<_>>();
    eventually("six alerts at the receiver", || {
        received.batches.lock().unwrap().iter().map(|(_, alerts)| alerts.len()).sum::<usize>() == 6
    })
    .await;
    let batches = received.batches.lock().unwrap().clone();
    let delivered: Vec<String> = batches.iter().flat_map(|(_, alerts)| alerts.iter().map(json_brief)).collect();
    assert_eq!(delivered, expected, "every alert, once, in order, after three refusals");
    assert!(batches.iter().all(|(auth, _)| auth.as_deref() == Some("Bearer s3cret")), "the header, read from its file");
    assert!(received.requests.load(Ordering::SeqCst) > 3, "the first three were answered 503 and tried again");
    let first = &batches[0].1[0];
    assert_eq!((first["sensor_id"].as_str(), first["severity"].as_str()), (Some("s"), Some("SEVERITY_WARNING")));
    assert_eq!(first["values"]["temperature"], 5.0);
    // Counted once the receiver's answer is in, which is after it recorded the batch.
    eventually("six counted as sent", || metric(&telemetry, "alertstream_sink_sent_total{sink=\"hook\"}") == 6).await;
}

#[tokio::test]
async fn a_full_queue_and_a_counterpart_that_never_answers_lose_nothing_silently() {
    // A port nobody listens on: every delivery is refused, and retried.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let sinks_text =
        format!("[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{closed}/hook\"\nqueue = 2\n");
    let (server, sinks, telemetry) = server_with_sinks(&sinks_text, Duration::from_millis(200)).await;
    let (alerts, status) = stream_all(&mut server.client().await, crossings(10)).await;
    status.unwrap();
    assert_eq!(alerts.len(), 10, "the stream itself is not slowed or cut");
    sinks.flush().await;
    let dropped = |reason: &str| {
        metric(&telemetry, &format!("alertstream_sink_dropped_total{{sink=\"hook\",reason=\"{reason}\"}}"))
    };
    let (full, unsent) = (dropped("queue_full"), dropped("flush_deadline"));
    assert_eq!(full + unsent, 10, "every alert is counted: {full} for a full queue, {unsent} at the flush deadline");
    // The task holds one batch (taken when the first alert came) and the queue two more.
    assert!(full >= 6, "{full}");
    assert_eq!(metric(&telemetry, "alertstream_sink_sent_total{sink=\"hook\"}"), 0);
}

#[tokio::test]
async fn json_lines_files_rotate_by_size_and_appear_only_complete() {
    let dir = tempfile::tempdir().unwrap();
    let sinks_text = format!(
        "[[sink]]\nname = \"lake\"\ntype = \"jsonl\"\ndir = \"{}\"\nmax_file_bytes = 600\nevents = true\n",
        dir.path().display()
    );
    let (server, sinks, _telemetry) = server_with_sinks(&sinks_text, Duration::from_secs(5)).await;
    let mut readings = crossings(20);
    readings.push(reading("s", 100, &[("temperature", f64::NAN)]));
    let (alerts, status) = stream_all(&mut server.client().await, readings).await;
    status.unwrap();
    assert_eq!(alerts.len(), 21);
    // Until the flush, the files being written are hidden; then every file is complete.
    sinks.flush().await;
    let mut files: Vec<(u64, String)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .map(|name| {
            let stem = name.strip_suffix(".jsonl").unwrap_or_else(|| panic!("{name}"));
            let parts: Vec<&str> = stem.split('-').collect();
            assert_eq!(parts[0], "alertstream", "{name}: no hidden file is left");
            assert_eq!(parts[2], std::process::id().to_string(), "{name}: the process id");
            (parts[3].parse().unwrap(), name)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "rotated by size: {files:?}");
    let lines: Vec<Value> = files
        .iter()
        .flat_map(|(_, name)| {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.len() < 600 + 300, "{name} stops near its bound");
            text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect::<Vec<_>>()
        })
        .collect();
    let expected: Vec<String> = alerts.iter().map(wire_brief).collect();
    assert_eq!(lines.iter().map(json_brief).collect::<Vec<_>>(), expected, "every alert, the event included");
}

#[tokio::test]
async fn a_reload_adds_a_sink_and_shutdown_completes_its_last_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    let lake = dir.path().join("lake");
    std::fs::write(&rules, alertstream::config::DEFAULT_RULES).unwrap();
    let mut server = common::binary::Binary::start(&["--rules", rules.to_str().unwrap()]);
    let sink = format!("\n[[sink]]\nname = \"lake\"\ntype = \"jsonl\"\ndir = \"{}\"\n", lake.display());
    let staged = dir.path().join("rules.staged");
    std::fs::write(&staged, format!("{}{sink}", alertstream::config::DEFAULT_RULES)).unwrap();
    std::fs::rename(&staged, &rules).unwrap();
    let reloaded = server.wait_for_log("Reloaded rules.").await;
    assert!(reloaded.contains("\"sinks\":1"), "{reloaded}");
    let mut client = pb::alert_service_client::AlertServiceClient::new(server.channel().await);
    let (alerts, status) = stream_all(&mut client, crossings(4)).await;
    status.unwrap();
    assert_eq!(alerts.len(), 4);
    // The file is still being written (its age is a minute): hidden until shutdown completes it.
    server.signal("TERM");
    assert_eq!(server.exit_code().await, Some(0));
    let names: Vec<String> =
        std::fs::read_dir(&lake).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("alertstream-") && names[0].ends_with("-0.jsonl"), "{names:?}");
    let lines: Vec<Value> = std::fs::read_to_string(lake.join(&names[0]))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.iter().map(json_brief).collect::<Vec<_>>(), alerts.iter().map(wire_brief).collect::<Vec<_>>());
}

/// A server with the default rules and a webhook sink to a receiver, on a manual clock (which --stale-after counts
/// on) that starts at the system's time (the readings' own), with metrics on; keeping sensor states in `state_dir`
/// when given.
async fn stale_server(state_dir: Option<&std::path::Path>) -> (Arc<Received>, ManualClock, Telemetry, TestServer) {
    stale_server_on(|clock, telemetry| {
        state_dir.map_or_else(SensorStates::default, |dir| {
            let store = EmbeddedStore::open(dir, Duration::from_secs(86_400), Clock::Manual(clock.clone())).unwrap();
            SensorStates::new(Arc::new(store), Duration::from_secs(60), telemetry.clone()).unwrap()
        })
    })
    .await
}

/// [`stale_server`] with the sensor states `states` makes (on the server's clock and telemetry).
async fn stale_server_on(
    states: impl FnOnce(&ManualClock, &Telemetry) -> SensorStates,
) -> (Arc<Received>, ManualClock, Telemetry, TestServer) {
    let (addr, received) = receiver(0).await;
    let clock = ManualClock::new(Clock::System.now());
    let rules = format!(
        "{}\n[[sink]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://{addr}/hook\"\n",
        alertstream::config::DEFAULT_RULES
    );
    let file = alertstream_rules::parse("stale.toml", &rules).unwrap();
    let telemetry = Telemetry::on();
    let states = states(&clock, &telemetry);
    let options = SinkOptions { clock: Clock::Manual(clock.clone()), states: states.clone(), ..SinkOptions::default() };
    let sinks = Sinks::new(telemetry.clone(), options);
    sinks.apply(&file.sinks, &file.rules).unwrap();
    let config = ServeConfig {
        clock: Clock::Manual(clock.clone()),
        sinks,
        telemetry: telemetry.clone(),
        states,
        ..ServeConfig::default()
    };
    (received, clock, telemetry, TestServer::with(file.rules, config).await)
}

#[tokio::test]
async fn an_alert_whose_stream_ended_while_firing_is_resolved_as_stale_unless_a_stream_fires_it_again() {
    let (received, clock, telemetry, server) = stale_server(None).await;
    let now = |sensor: &str, seq: u64, temperature: f64| pb::Reading {
        time: Some(prost_types::Timestamp::from(clock.now())),
        ..reading(sensor, seq, &[("temperature", temperature)])
    };
    // A stream fires for a and b, and ends while both fire.
    let (alerts, status) = stream_all(&mut server.client().await, vec![now("a", 1, 5.0), now("b", 2, 5.0)]).await;
    status.unwrap();
    assert_eq!(alerts.len(), 2);
    eventually("both wait to go stale", || metric(&telemetry, "alertstream_sink_stale_waiting") == 2).await;
    // Another stream fires for b again, and stays open: b is that stream's now.
    let (tx, mut open) = common::open_stream(server.channel().await).await;
    tx.send(now("b", 3, 4.0)).await.unwrap();
    assert_eq!(wire_brief(&common::next_alert(&mut open).await), "temp_too_low ALERT_STATE_FIRING \"3\"");
    eventually("only a waits", || metric(&telemetry, "alertstream_sink_stale_waiting") == 1).await;
    // --stale-after passes: a goes to the sink as a RESOLVED marked stale; b, which a live stream fired, does not.
    clock.advance(Duration::from_secs(301));
    eventually("nothing waits", || metric(&telemetry, "alertstream_sink_stale_waiting") == 0).await;
    let stale_at = clock.now();
    eventually("four alerts at the receiver", || {
        received.batches.lock().unwrap().iter().map(|(_, alerts)| alerts.len()).sum::<usize>() == 4
    })
    .await;
    let delivered: Vec<Value> =
        received.batches.lock().unwrap().iter().flat_map(|(_, alerts)| alerts.iter().cloned()).collect();
    let shown: Vec<String> = delivered
        .iter()
        .map(|a| {
            format!("{} {} {}", a["sensor_id"].as_str().unwrap(), json_brief(a), a["stale"].as_bool().unwrap_or(false))
        })
        .collect();
    assert_eq!(
        shown,
        [
            "a temp_too_low ALERT_STATE_FIRING \"1\" false",
            "b temp_too_low ALERT_STATE_FIRING \"2\" false",
            "b temp_too_low ALERT_STATE_FIRING \"3\" false",
            "a temp_too_low ALERT_STATE_RESOLVED \"1\" true",
        ]
    );
    let a = delivered.iter().find(|a| a["sensor_id"] == "a" && a["stale"] == true).unwrap();
    assert_eq!(a["message"], "resolved: temp too low");
    assert_eq!(a["time"].as_str().unwrap(), alertstream::convert::timestamp_text(stale_at), "resolved at its time");
    drop(tx);
}

#[tokio::test]
async fn a_firing_state_restored_from_the_state_store_is_not_resolved_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (received, clock, telemetry, server) = stale_server(Some(dir.path())).await;
    let now = |seq: u64, temperature: f64| pb::Reading {
        time: Some(prost_types::Timestamp::from(clock.now())),
        ..reading("a", seq, &[("temperature", temperature)])
    };
    // A stream fires for a and ends while it fires: its FIRING waits to go stale, and its state is saved.
    let (alerts, status) = stream_all(&mut server.client().await, vec![now(1, 5.0)]).await;
    status.unwrap();
    assert_eq!(alerts.len(), 1);
    eventually("a waits to go stale", || metric(&telemetry, "alertstream_sink_stale_waiting") == 1).await;
    eventually("a's state is saved", || metric(&telemetry, "alertstream_state_saves_total{result=\"saved\"}") == 1)
        .await;
    // The sensor streams again: its state comes back firing, so no FIRING goes out, and it is no longer stale.
    let (tx, mut open) = common::open_stream(server.channel().await).await;
    tx.send(now(2, 4.0)).await.unwrap();
    tx.send(now(3, 20.0)).await.unwrap();
    assert_eq!(wire_brief(&common::next_alert(&mut open).await), "temp_too_low ALERT_STATE_RESOLVED \"3\"");
    eventually("nothing waits", || metric(&telemetry, "alertstream_sink_stale_waiting") == 0).await;
    clock.advance(Duration::from_secs(301));
    // The sinks see one FIRING and its one real RESOLVED: no stale RESOLVED.
    eventually("two alerts at the receiver", || {
        received.batches.lock().unwrap().iter().map(|(_, alerts)| alerts.len()).sum::<usize>() == 2
    })
    .await;
    let delivered: Vec<String> = received
        .batches
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, alerts)| {
            alerts.iter().map(|a| format!("{} {}", json_brief(a), a["stale"].as_bool().unwrap_or(false)))
        })
        .collect();
    assert_eq!(
        delivered,
        ["temp_too_low ALERT_STATE_FIRING \"1\" false", "temp_too_low ALERT_STATE_RESOLVED \"3\" false"]
    );
    drop(tx);
}

/// What a receiver got: `sensor rule STATE "seq" stale`.
fn delivered(received: &Received) -> Vec<String> {
    let batches = received.batches.lock().unwrap();
    batches
        .iter()
        .flat_map(|(_, alerts)| alerts.iter())
        .map(|a| {
            format!("{} {} {}", a["sensor_id"].as_str().unwrap(), json_brief(a), a["stale"].as_bool().unwrap_or(false))
        })
        .collect()
}

#[tokio::test]
async fn a_replica_that_takes_a_firing_sensor_over_announces_it_and_the_old_one_does_not_resolve_it_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let nats = common::daemon::free_port();
    let _daemon = common::daemon::nats_server(nats, dir.path()).await;
    let shared = |_: &ManualClock, telemetry: &Telemetry| {
        let store = NatsStore::open(&format!("nats://{nats}"), Duration::from_secs(86_400), 1).unwrap();
        SensorStates::new(Arc::new(store), Duration::from_secs(60), telemetry.clone()).unwrap()
    };
    let (old_received, old_clock, old_telemetry, old) = stale_server_on(shared).await;
    let (new_received, new_clock, _, new) = stale_server_on(shared).await;
    let at = |clock: &ManualClock, sensor: &str, seq: u64, temperature: f64| pb::Reading {
        time: Some(prost_types::Timestamp::from(clock.now())),
        ..reading(sensor, seq, &[("temperature", temperature)])
    };
    // On one replica a stream fires for a and b and ends while both fire: both wait to go stale there, and both
    // states are saved in the shared store.
    let readings = vec![at(&old_clock, "a", 1, 5.0), at(&old_clock, "b", 2, 5.0)];
    let (alerts, status) = stream_all(&mut old.client().await, readings).await;
    status.unwrap();
    assert_eq!(alerts.len(), 2);
    eventually("both saved", || metric(&old_telemetry, "alertstream_state_saves_total{result=\"saved\"}") == 2).await;
    // a's next stream reaches the other replica: it restores a firing (no FIRING to the client), and tells its own
    // sinks, which never had it.
    let (tx, mut open) = common::open_stream(new.channel().await).await;
    tx.send(at(&new_clock, "a", 3, 4.0)).await.unwrap();
    tx.send(at(&new_clock, "a", 4, 4.5)).await.unwrap();
    tx.send(at(&new_clock, "c", 5, 5.0)).await.unwrap();
    assert_eq!(wire_brief(&common::next_alert(&mut open).await), "temp_too_low ALERT_STATE_FIRING \"5\"");
    eventually("the new replica's sink has a and c", || delivered(&new_received).len() == 2).await;
    assert_eq!(
        delivered(&new_received),
        ["a temp_too_low ALERT_STATE_FIRING \"1\" false", "c temp_too_low ALERT_STATE_FIRING \"5\" false"]
    );
    // --stale-after passes on the old replica: b, which nobody took over, is resolved as stale there; a is the new
    // replica's now, and is not.
    old_clock.advance(Duration::from_secs(301));
    eventually("three alerts at the old replica's sink", || delivered(&old_received).len() == 3).await;
    assert_eq!(
        delivered(&old_received),
        [
            "a temp_too_low ALERT_STATE_FIRING \"1\" false",
            "b temp_too_low ALERT_STATE_FIRING \"2\" false",
            "b temp_too_low ALERT_STATE_RESOLVED \"2\" true",
        ]
    );
    eventually("nothing waits", || metric(&old_telemetry, "alertstream_sink_stale_waiting") == 0).await;
    assert_eq!(delivered(&old_received).len(), 3);
    drop(tx);
}
