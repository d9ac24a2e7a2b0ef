//! Resuming streams (`alertstream-resume: 1`, docs/DEPLOYMENT.md) through real servers: the server says in
//! `checkpoint` events up to which reading each sensor's state is durable, skips a reading the client sends again,
//! and when the client is gone leaves the state of the last checkpoint, so that what the client sends again is
//! applied once. Time is a manual clock: a periodic save comes when the test advances it.

mod common;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use alertstream::{
    clock::{Clock, ManualClock},
    config::ServeConfig,
    pb::{self, alert_service_client::AlertServiceClient},
    state_store::{EmbeddedStore, SensorStates, StateStore, StoreError, Stored, Write, Written},
    telemetry::Telemetry,
};
use common::{TestServer, brief, next_alert, reading};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming, transport::Channel};

const RULES: &str = "[[rule]]\nname = \"hot\"\ncondition = \"t > 100\"\n";
/// How often an open stream saves.
const SAVE_INTERVAL: Duration = Duration::from_secs(60);

/// A server with the rules above on a manual clock, keeping states in an embedded store in a scratch directory,
/// metrics on; the directory (kept until dropped) and the clock come with it.
async fn server() -> (tempfile::TempDir, ManualClock, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let manual = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let clock = Clock::Manual(manual.clone());
    let telemetry = Telemetry::on();
    let store = Arc::new(EmbeddedStore::open(dir.path(), Duration::from_secs(86_400), clock.clone()).unwrap());
    let states = SensorStates::new(store, SAVE_INTERVAL, telemetry.clone()).unwrap();
    let rules = alertstream_rules::parse("resume.toml", RULES).unwrap().rules;
    let server = TestServer::with(rules, ServeConfig { states, clock, telemetry, ..ServeConfig::default() }).await;
    (dir, manual, server)
}

/// Opens a stream asking to resume; the test sends readings through the sender (dropping it half-closes).
async fn resuming(channel: Channel) -> Result<(mpsc::Sender<pb::Reading>, Streaming<pb::Alert>), tonic::Status> {
    let (tx, rx) = mpsc::channel(16);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request.metadata_mut().insert("alertstream-resume", "1".parse().unwrap());
    let response = AlertServiceClient::new(channel).stream(request).await?;
    Ok((tx, response.into_inner()))
}

async fn send(tx: &mpsc::Sender<pb::Reading>, readings: &[(u64, f64)]) {
    for &(seq, t) in readings {
        tx.send(reading("press-1", seq, &[("t", t)])).await.unwrap();
    }
}

/// What is left of a stream once the client half-closed: every message, the stream ending OK.
async fn rest(alerts: Streaming<pb::Alert>) -> Vec<String> {
    let (alerts, status) = common::collect(alerts).await;
    status.unwrap();
    alerts.iter().map(brief).collect()
}

/// Waits (bounded) until the server has no open stream: it has seen a client go.
async fn no_open_stream(server: &TestServer) {
    for _ in 0..400 {
        let (_, samples) = common::scrape(server).await;
        if samples.get("alertstream_active_streams") == Some(&0.0) {
            return;
        }
        // Waiting for the server's task to see a reset stream: polled, bounded.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the stream never ended on the server");
}

#[tokio::test]
async fn a_resuming_stream_hears_what_is_durable_and_skips_what_it_sends_again() {
    let (_dir, clock, server) = server().await;
    let (tx, mut alerts) = resuming(server.channel().await).await.unwrap();
    send(&tx, &[(1, 20.0), (2, 20.0), (3, 150.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 3 hot FIRING");

    // The save interval passes while the stream is idle: its timer wakes it, it saves, and once the store has the
    // state the client hears so: the sensor is durable up to reading 3.
    clock.advance(SAVE_INTERVAL);
    let checkpoint = next_alert(&mut alerts).await;
    assert_eq!(brief(&checkpoint), "press-1 3 checkpoint FIRING");
    assert_eq!(checkpoint.severity, pb::Severity::Info as i32);

    send(&tx, &[(4, 150.0), (5, 20.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 5 hot RESOLVED");
    // The client sends 4 and 5 again (as after a reconnect): skipped. Applied again, 4 would fire `hot`.
    send(&tx, &[(4, 150.0), (5, 20.0), (6, 150.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 6 hot FIRING");

    // At the end, the last checkpoint comes before the status.
    drop(tx);
    assert_eq!(rest(alerts).await, ["press-1 6 checkpoint FIRING"]);

    // Checkpoints are no alerts (nor are the readings sent again).
    let (_, samples) = common::scrape(&server).await;
    assert_eq!(samples.get("alertstream_alerts_total{rule=\"checkpoint\",state=\"firing\"}"), None);
    assert_eq!(samples.get("alertstream_readings_resent_total"), Some(&2.0));
}

#[tokio::test]
async fn a_stream_that_does_not_ask_to_resume_sees_no_checkpoint_and_applies_every_reading() {
    let (_dir, clock, server) = server().await;
    let (tx, mut alerts) = common::open_stream(server.channel().await).await;
    send(&tx, &[(1, 150.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 1 hot FIRING");
    clock.advance(SAVE_INTERVAL);
    send(&tx, &[(2, 20.0), (1, 150.0)]).await;
    drop(tx);
    // Reading 1 again is applied as any reading would be (its time is within the lateness allowed).
    assert_eq!(rest(alerts).await, ["press-1 2 hot RESOLVED", "press-1 1 hot FIRING"]);
}

#[tokio::test]
async fn a_resuming_stream_whose_client_is_gone_leaves_the_state_of_its_last_checkpoint() {
    let (_dir, clock, server) = server().await;
    let (tx, mut alerts) = resuming(server.channel().await).await.unwrap();
    send(&tx, &[(1, 150.0), (2, 20.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 1 hot FIRING");
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 2 hot RESOLVED");
    clock.advance(SAVE_INTERVAL);
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 2 checkpoint FIRING");
    send(&tx, &[(3, 150.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 3 hot FIRING");
    // The connection is lost before the next checkpoint.
    drop((tx, alerts));
    no_open_stream(&server).await;

    // The client sends again what followed checkpoint 2. The sensor is back at that checkpoint's state, so reading
    // 3 is applied once more and fires again (a resuming client drops that FIRING: it has it).
    let (tx, alerts) = resuming(server.channel().await).await.unwrap();
    send(&tx, &[(3, 150.0), (4, 20.0)]).await;
    drop(tx);
    assert_eq!(rest(alerts).await, ["press-1 3 hot FIRING", "press-1 4 hot RESOLVED", "press-1 4 checkpoint FIRING"]);
}

#[tokio::test]
async fn a_client_that_missed_checkpoints_resumes_from_the_last_one_it_saw() {
    let (_dir, clock, server) = server().await;
    let (tx, mut alerts) = resuming(server.channel().await).await.unwrap();
    send(&tx, &[(1, 150.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 1 hot FIRING");
    clock.advance(SAVE_INTERVAL);
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 1 checkpoint FIRING");
    // Reading 2 resolves `hot`, and the next save makes that durable. Both reach the client's connection, but its
    // application has read neither when the connection breaks: to it they are lost.
    send(&tx, &[(2, 20.0)]).await;
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 2 hot RESOLVED");
    clock.advance(SAVE_INTERVAL);
    assert_eq!(brief(&next_alert(&mut alerts).await), "press-1 2 checkpoint FIRING");
    drop((tx, alerts));
    no_open_stream(&server).await;
    // The client sends 2 again: the sensor goes back to the version of checkpoint 1, and the RESOLVED comes again
    // (the newest version would skip reading 2, and the client would never see it).
    let (tx, alerts) = resuming(server.channel().await).await.unwrap();
    send(&tx, &[(2, 20.0)]).await;
    drop(tx);
    assert_eq!(rest(alerts).await, ["press-1 2 hot RESOLVED", "press-1 2 checkpoint FIRING"]);
    let (_, samples) = common::scrape(&server).await;
    assert_eq!(samples.get("alertstream_resume_gaps_total"), None);
}

#[tokio::test]
async fn a_client_further_behind_than_the_versions_kept_is_told_in_the_metrics_and_log() {
    let (_dir, clock, server) = server().await;
    let (tx, mut alerts) = resuming(server.channel().await).await.unwrap();
    // Five readings, each saved: the sensor keeps the last four versions (readings 2 to 5).
    for seq in 1..=5 {
        let t = if seq % 2 == 1 { 150.0 } else { 20.0 };
        send(&tx, &[(seq, t)]).await;
        let state = if seq % 2 == 1 { "FIRING" } else { "RESOLVED" };
        assert_eq!(brief(&next_alert(&mut alerts).await), format!("press-1 {seq} hot {state}"));
        clock.advance(SAVE_INTERVAL);
        assert_eq!(brief(&next_alert(&mut alerts).await), format!("press-1 {seq} checkpoint FIRING"));
    }
    drop((tx, alerts));
    no_open_stream(&server).await;
    // A client that saw none of those checkpoints sends 1 on again: the oldest version kept has reading 2, so 1 and
    // 2 are skipped, and the server says that their alerts may not have reached the client.
    let (tx, alerts) = resuming(server.channel().await).await.unwrap();
    send(&tx, &[(1, 150.0), (2, 20.0), (3, 150.0)]).await;
    drop(tx);
    assert_eq!(rest(alerts).await, ["press-1 3 hot FIRING", "press-1 3 checkpoint FIRING"]);
    let (_, samples) = common::scrape(&server).await;
    assert_eq!(samples.get("alertstream_resume_gaps_total"), Some(&1.0));
    assert_eq!(samples.get("alertstream_readings_resent_total"), Some(&2.0));
}

/// A store that cannot be read (NATS away, say) and takes every save.
struct Unreadable;

impl StateStore for Unreadable {
    fn load(&self, _: &str) -> Result<Option<Stored>, StoreError> {
        Err(StoreError("NATS is unreachable".to_owned()))
    }

    fn save(&self, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
        Ok(writes.iter().map(|_| Written::Saved(1)).collect())
    }
}

#[tokio::test]
async fn a_resuming_stream_whose_sensor_cannot_be_loaded_ends_unavailable_and_a_plain_one_goes_on_fresh() {
    let states = SensorStates::new(Arc::new(Unreadable), SAVE_INTERVAL, Telemetry::off()).unwrap();
    let rules = alertstream_rules::parse("resume.toml", RULES).unwrap().rules;
    let server = TestServer::with(rules, ServeConfig { states, ..ServeConfig::default() }).await;
    // Fresh, the sensor would apply what its client sends again to nothing: the client is to try again later.
    let (tx, alerts) = resuming(server.channel().await).await.unwrap();
    send(&tx, &[(7, 150.0)]).await;
    let (got, status) = common::collect(alerts).await;
    assert!(got.is_empty(), "{got:?}");
    let status = status.expect_err("the stream ends");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // A stream that does not resume starts the sensor fresh, as without a store.
    let (tx, alerts) = common::open_stream(server.channel().await).await;
    send(&tx, &[(7, 150.0)]).await;
    drop(tx);
    assert_eq!(rest(alerts).await, ["press-1 7 hot FIRING"]);
}

#[tokio::test]
async fn a_server_without_a_state_store_refuses_to_resume() {
    let server = TestServer::with_rules(RULES).await;
    let refused = resuming(server.channel().await).await.expect_err("refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("--state-dir"), "{refused:?}");
}
