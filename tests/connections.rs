//! Connection management through a real server, watched on the wire by a frame tap: the maximum connection age
//! (GOAWAY, then the streams flush and end UNAVAILABLE, never a reset), its grace, and the cap on connections.
//! Policy timers run on the server's manual clock, so the tests move time rather than wait for it, and assert the
//! order of what happens, never how long it took.

mod common;

use std::time::{Duration, SystemTime};

use alertstream::{
    client,
    clock::{Clock, ManualClock},
    config::{STREAM_WINDOW, ServeConfig, default_rules},
    connections::ConnectionPolicy,
    farewell::CONNECTION_AGED,
    pb::{self, alert_service_client::AlertServiceClient},
};
use common::{
    TestServer, brief, collect,
    frame_tap::{DATA, Event, FrameTap, GOAWAY, RST_STREAM},
    next_alert, open_stream, reading,
};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const AGE: Duration = Duration::from_secs(100);
const GRACE: Duration = Duration::from_secs(10);
/// The first stream a client opens on a connection.
const FIRST_STREAM: u32 = 1;

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
}

/// A server whose connections age after [`AGE`] (±10 %) with [`GRACE`], on a manual clock.
async fn aging_server() -> (TestServer, ManualClock) {
    let manual = ManualClock::new(start());
    let policy = ConnectionPolicy { max_age: Some(AGE), max_age_grace: GRACE, ..ServeConfig::default().connections };
    let config = ServeConfig { clock: Clock::Manual(manual.clone()), connections: policy, ..ServeConfig::default() };
    (TestServer::with(default_rules(), config).await, manual)
}

async fn channel_to(addr: std::net::SocketAddr) -> Channel {
    client::endpoint(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// A reading of sensor `s` that fires `temp_too_low` when `seq` is odd and resolves it when even: one alert each.
fn alternating(seq: u64) -> pb::Reading {
    reading("s", seq, &[("temperature", if seq % 2 == 1 { 5.0 } else { 20.0 })])
}

fn data_bytes(events: &[Event], on: u32) -> usize {
    events
        .iter()
        .map(|e| match e {
            Event::Frame { kind: DATA, stream, len, .. } if *stream == on => *len,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn at_its_maximum_age_a_connection_gets_goaway_then_its_streams_flush_their_alerts_and_end_unavailable() {
    let (server, clock) = aging_server().await;
    let tap = FrameTap::start(server.grpc_addr).await;
    let (readings, mut alerts) = open_stream(channel_to(tap.addr).await).await;

    // Short of the youngest age the jitter allows (90 s), the connection is served as any other.
    clock.advance(AGE * 89 / 100);
    readings.send(alternating(1)).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "s 1 temp_too_low FIRING");
    assert!(!tap.events().iter().any(|e| e.is(GOAWAY)), "{:?}", tap.events());

    // The client stops reading and sends more than its receive window can take in alerts, so alerts are owed when
    // the connection ages: the server fills the window, then waits.
    // Fewer than the server's receive window holds in readings, so that the client has sent them all when the stream
    // ends. (With more, the client is still sending then: hyper resets the stream with NO_ERROR after the trailers,
    // and the tonic client, which had not read the trailers it buffered, reports `h2 protocol error: error reading a
    // body from connection` instead of UNAVAILABLE: a transport behaviour noted for a later issue.)
    const SENT: u64 = 3000;
    let sender = tokio::spawn(async move {
        for seq in 2..=SENT {
            if readings.send(alternating(seq)).await.is_err() {
                break;
            }
        }
    });
    tap.wait_until("a full stream window of alerts", |events| {
        data_bytes(events, FIRST_STREAM) >= STREAM_WINDOW as usize
    })
    .await;

    // Past the oldest age the jitter allows (110 s): GOAWAY.
    clock.advance(AGE * 22 / 100);
    tap.wait_until("GOAWAY", |events| events.iter().any(|e| e.is(GOAWAY))).await;

    // Now the client reads: every alert owed, in order, then UNAVAILABLE.
    let (rest, status) = collect(alerts).await;
    let status = status.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unavailable, CONNECTION_AGED));
    assert!(rest.len() > 1000, "only {} alerts", rest.len());
    let expected: Vec<String> = (2..2 + rest.len() as u64)
        .map(|seq| format!("s {seq} temp_too_low {}", if seq % 2 == 1 { "FIRING" } else { "RESOLVED" }))
        .collect();
    assert_eq!(rest.iter().map(brief).collect::<Vec<_>>(), expected);
    sender.await.unwrap();

    // On the wire: GOAWAY, then alerts that were owed, then the stream's end; never a reset.
    let events = tap.events();
    let goaway = FrameTap::position(&events, |e| e.is(GOAWAY)).unwrap();
    let end = FrameTap::position(&events, |e| e.ends(FIRST_STREAM)).expect("the stream ended with trailers");
    assert!(goaway < end, "{events:?}");
    assert!(data_bytes(&events[goaway..end], FIRST_STREAM) > 0, "no alert flushed after GOAWAY: {events:?}");
    assert!(!events.iter().any(|e| e.is(RST_STREAM)), "{events:?}");
    assert!(!events[..end].contains(&Event::Closed), "{events:?}");
}

#[tokio::test]
async fn after_its_maximum_age_and_grace_a_connection_still_busy_is_closed() {
    let (server, clock) = aging_server().await;
    let tap = FrameTap::start(server.grpc_addr).await;
    // A health watch never ends by itself: it keeps the connection busy past its age.
    let mut health = HealthClient::new(channel_to(tap.addr).await);
    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, 1, "SERVING");

    clock.advance(AGE * 111 / 100);
    tap.wait_until("GOAWAY", |events| events.iter().any(|e| e.is(GOAWAY))).await;
    assert!(!tap.events().contains(&Event::Closed), "closed before the grace ran out: {:?}", tap.events());

    clock.advance(GRACE);
    let events = tap.wait_until("the connection closed", |events| events.contains(&Event::Closed)).await;
    assert!(!events.iter().any(|e| e.ends(FIRST_STREAM)), "the watch was ended, not cut: {events:?}");
    assert!(watch.message().await.is_err(), "the watch ends with the connection");
}

#[tokio::test]
async fn beyond_max_connections_a_connections_rpcs_get_resource_exhausted_then_goaway() {
    let policy = ConnectionPolicy { max_connections: 1, ..ServeConfig::default().connections };
    let server = TestServer::with(default_rules(), ServeConfig { connections: policy, ..ServeConfig::default() }).await;

    // The first connection is admitted and streams.
    let first_tap = FrameTap::start(server.grpc_addr).await;
    let (readings, mut alerts) = open_stream(channel_to(first_tap.addr).await).await;
    readings.send(reading("s", 1, &[("temperature", 8.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "s 1 temp_too_low FIRING");

    // The second's RPCs are refused, then it is sent GOAWAY.
    let second_tap = FrameTap::start(server.grpc_addr).await;
    let mut second = AlertServiceClient::new(channel_to(second_tap.addr).await);
    let refused = second.list_rules(pb::ListRulesRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("at most 1"), "{refused:?}");
    second_tap.wait_until("GOAWAY", |events| events.iter().any(|e| e.is(GOAWAY))).await;

    // The first is untouched.
    readings.send(reading("s", 2, &[("temperature", 12.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "s 2 temp_too_low RESOLVED");

    // Once the first connection has closed, its place is free.
    drop(readings);
    let (rest, status) = collect(alerts).await;
    assert!(rest.is_empty() && status.is_ok(), "{rest:?} {status:?}");
    first_tap.wait_until("the first connection closed", |events| events.contains(&Event::Closed)).await;
    let mut third = AlertServiceClient::new(server.channel().await);
    assert_eq!(third.list_rules(pb::ListRulesRequest {}).await.unwrap().into_inner().rules.len(), 2);
}
