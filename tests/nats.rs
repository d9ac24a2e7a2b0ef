//! The NATS sink against Debian's real `nats-server` with JetStream (`/usr/sbin/nats-server -js`, installed by
//! `scripts/setup-tools.sh`), started by the test on loopback: the sink makes the stream, publishes every alert with
//! acknowledgement, and goes on through a server restart; the test reads the messages back from the stream: every
//! alert once, in order, each with its `Nats-Msg-Id`.

mod common;

use std::{net::SocketAddr, time::Duration};

use alertstream::{
    config::ServeConfig,
    pb,
    sinks::{SinkOptions, Sinks},
    telemetry::Telemetry,
};
use common::{
    TestServer,
    daemon::{free_port, nats_server},
    next_alert, open_stream, reading,
};
use serde_json::Value;

/// The stream's messages so far: (subject, Nats-Msg-Id, payload), waiting (bounded) until there are `count`.
async fn messages(addr: SocketAddr, count: u64) -> Vec<(String, String, Value)> {
    let client = async_nats::connect(addr.to_string()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    // The sink makes the stream with its first delivery.
    let mut stream = None;
    for _ in 0..1_200 {
        if let Ok(mut found) = js.get_stream("ALERTS").await
            && found.info().await.unwrap().state.messages >= count
        {
            stream = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = stream.unwrap_or_else(|| panic!("the stream never held {count} messages"));
    let held = stream.info().await.unwrap().state.messages;
    let mut out = Vec::new();
    for sequence in 1..=held {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()).unwrap_or_default();
        out.push((message.subject.to_string(), id, serde_json::from_slice(&message.payload).unwrap()));
    }
    out
}

fn brief(alert: &pb::Alert) -> String {
    let state = pb::AlertState::try_from(alert.state).unwrap().as_str_name();
    format!("{} {} {state} {}", alert.sensor_id, alert.rule, alert.reading_seq)
}

fn json_brief(alert: &Value) -> String {
    let seq = alert["reading_seq"].as_str().unwrap();
    format!(
        "{} {} {} {seq}",
        alert["sensor_id"].as_str().unwrap(),
        alert["rule"].as_str().unwrap(),
        alert["state"].as_str().unwrap()
    )
}

#[tokio::test]
async fn every_alert_reaches_jetstream_once_through_a_nats_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let nats = nats_server(addr, dir.path()).await;
    let rules = format!(
        "{}\n[[sink]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"nats://{addr}\"\nstream = \"ALERTS\"\n",
        alertstream::config::DEFAULT_RULES
    );
    let file = alertstream_rules::parse("nats.toml", &rules).unwrap();
    let sinks = Sinks::new(Telemetry::off(), SinkOptions::default());
    sinks.apply(&file.sinks, &file.rules).unwrap();
    let server = TestServer::with(file.rules, ServeConfig { sinks: sinks.clone(), ..ServeConfig::default() }).await;
    let (tx, mut alerts) = open_stream(server.channel().await).await;
    let mut sent = Vec::new();
    // Temperature below 10, then above: FIRING and RESOLVED by turns; one pH alert too.
    let mut send = async |seq: u64, values: &[(&str, f64)]| {
        tx.send(reading("s", seq, values)).await.unwrap();
        let alert = next_alert(&mut alerts).await;
        sent.push(brief(&alert));
    };
    for seq in 1..=3 {
        send(seq, &[("temperature", if seq % 2 == 1 { 5.0 } else { 15.0 })]).await;
    }
    send(4, &[("pH", 6.0)]).await;
    assert_eq!(messages(addr, 4).await.len(), 4, "the first four are in the stream");

    // The server goes away; alerts go on; it comes back with its store, and the sink delivers what waited.
    drop(nats);
    for seq in 5..=8 {
        send(seq, &[("temperature", if seq % 2 == 1 { 15.0 } else { 5.0 })]).await;
    }
    let _nats = nats_server(addr, dir.path()).await;
    let held = messages(addr, 8).await;
    let got: Vec<String> = held.iter().map(|(_, _, payload)| json_brief(payload)).collect();
    assert_eq!(got, sent, "every alert once, in order");
    assert!(
        held.iter().all(
            |(subject, _, payload)| *subject == format!("alertstream.alerts.{}", payload["rule"].as_str().unwrap())
        )
    );
    let mut ids: Vec<&String> = held.iter().map(|(_, id, _)| id).collect();
    assert!(ids.iter().all(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "a distinct id per alert");
}
