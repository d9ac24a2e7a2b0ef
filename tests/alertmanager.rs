//! The Alertmanager sink against Debian's real Alertmanager (`/usr/bin/prometheus-alertmanager`, installed by
//! `scripts/setup-tools.sh`), started by the test on loopback. Alertmanager's API never lists resolved alerts, so
//! it is configured to notify a webhook receiver this test runs (`send_resolved: true`, short group timings), and
//! the FIRING and RESOLVED notifications are checked there; then Alertmanager is restarted with empty storage and
//! the sink's periodic re-sending brings the still-firing alert back.

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use alertstream::{
    clock::Clock,
    config::ServeConfig,
    pb,
    sinks::{SinkOptions, Sinks},
    telemetry::Telemetry,
};
use axum::{Router, extract::State, routing::post};
use common::{
    TestServer, brief,
    daemon::{Daemon, free_port},
    next_alert, open_stream,
};
use serde_json::Value;

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// Starts Alertmanager on `addr`, notifying `receiver`, its storage under `dir`; returns once it is ready.
async fn alertmanager(addr: SocketAddr, receiver: SocketAddr, dir: &Path) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: test\n  group_by: ['alertname', 'sensor_id']\n  group_wait: 100ms\n  \
             group_interval: 500ms\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      \
             - url: http://{receiver}/notify\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let storage = dir.join("storage");
    let running = Daemon::start(
        ALERTMANAGER,
        [
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", storage.display()),
            format!("--web.listen-address={addr}"),
            // No gossip: Debian's default listens on 0.0.0.0:9094.
            "--cluster.listen-address=".to_owned(),
        ],
    );
    let ready = Get { addr, path: "/-/ready" };
    for _ in 0..600 {
        if ready.body().await.is_some() {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Alertmanager did not get ready");
}

/// A GET of `path` on Alertmanager.
struct Get {
    addr: SocketAddr,
    path: &'static str,
}

impl Get {
    /// The body of a 200 answer; `None` while Alertmanager cannot answer.
    async fn body(&self) -> Option<String> {
        tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let (code, _, body) =
            tokio::time::timeout(Duration::from_secs(5), common::http_get(self.addr, self.path)).await.ok()?;
        (code == 200).then_some(body)
    }
}

/// The notifications the receiver got: `status labels.sensor_id labels.alertname` per alert in them.
type Notifications = Arc<Mutex<Vec<Value>>>;

async fn notify(State(seen): State<Notifications>, body: String) {
    let body: Value = serde_json::from_str(&body).unwrap();
    seen.lock().unwrap().extend(body["alerts"].as_array().unwrap().iter().cloned());
}

async fn receiver() -> (SocketAddr, Notifications) {
    let seen = Notifications::default();
    let app = Router::new().route("/notify", post(notify)).with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A reading stamped now: Alertmanager reads `startsAt` and `endsAt` against its own clock.
fn reading_now(sensor: &str, seq: u64, temperature: f64) -> pb::Reading {
    let time = prost_types::Timestamp::from(Clock::System.now());
    pb::Reading {
        sensor_id: sensor.into(),
        values: [("temperature".into(), temperature)].into(),
        time: Some(time),
        seq,
    }
}

/// Waits (bounded, polling) for a notification about `sensor` in `status`, and returns it.
async fn notification(seen: &Notifications, sensor: &str, status: &str) -> Value {
    for _ in 0..1_200 {
        let found =
            seen.lock().unwrap().iter().find(|a| a["labels"]["sensor_id"] == sensor && a["status"] == status).cloned();
        if let Some(found) = found {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {status} notification for {sensor}: {:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn alertmanager_notifies_firing_and_resolved_and_a_restarted_one_learns_again_of_what_fires() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver_addr, seen) = receiver().await;
    let am_addr = free_port();
    let mut am = alertmanager(am_addr, receiver_addr, &dir.path().join("first")).await;

    let rules = format!(
        "{}\n[[sink]]\nname = \"pager\"\ntype = \"alertmanager\"\nurl = \"http://{am_addr}\"\nresend_interval = \"1s\"\n",
        alertstream::config::DEFAULT_RULES.replace(
            "message = \"temp too low\"",
            "message = \"temp too low\"\nresolve_message = \"temp back to {temperature}\"\nlabels = { team = \"utilities\" }"
        )
    );
    let file = alertstream_rules::parse("am.toml", &rules).unwrap();
    let sinks = Sinks::new(Telemetry::off(), SinkOptions::default());
    sinks.apply(&file.sinks, &file.rules).unwrap();
    let server = TestServer::with(file.rules, ServeConfig { sinks, ..ServeConfig::default() }).await;
    let (tx, mut alerts) = open_stream(server.channel().await).await;

    // FIRING: Alertmanager notifies with the rule's labels and the message.
    tx.send(reading_now("a", 1, 5.0)).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "a 1 temp_too_low FIRING");
    let firing = notification(&seen, "a", "firing").await;
    assert_eq!(firing["labels"]["alertname"], "temp_too_low");
    assert_eq!((&firing["labels"]["severity"], &firing["labels"]["team"]), (&"warning".into(), &"utilities".into()));
    assert_eq!(firing["annotations"]["summary"], "temp too low");
    assert_eq!(firing["annotations"]["values"], "temperature=5");

    // RESOLVED: notified as resolved, in the resolve message's words.
    tx.send(reading_now("a", 2, 15.0)).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "a 2 temp_too_low RESOLVED");
    let resolved = notification(&seen, "a", "resolved").await;
    assert_eq!(resolved["annotations"]["summary"], "temp back to 15");

    // Sensor b fires; Alertmanager restarts with no memory of it, and the sink's re-sending brings it back.
    tx.send(reading_now("b", 3, 5.0)).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "b 3 temp_too_low FIRING");
    notification(&seen, "b", "firing").await;
    drop(am);
    am = alertmanager(am_addr, receiver_addr, &dir.path().join("second")).await;
    let listed = Get { addr: am_addr, path: "/api/v2/alerts" };
    let mut back = false;
    for _ in 0..600 {
        let alerts: Value = serde_json::from_str(&listed.body().await.unwrap_or_else(|| "[]".into())).unwrap();
        if alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["sensor_id"] == "b" && a["status"]["state"] == "active")
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the restarted Alertmanager lists b's alert again");
    drop(am);
}
