//! SIGTERM against the real binary, mid-stream (as linkerd2-proxy's tests/shutdown.rs does): every owed alert is
//! delivered, then OK after a half-close within the grace period, or UNAVAILABLE when it runs out; exit code 0.

mod common;

use std::time::Duration;

use common::{binary::Binary, brief, next_alert, open_stream, reading};
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

#[tokio::test]
async fn sigterm_drains_then_a_half_closed_stream_gets_every_alert_and_ok() {
    let mut server = Binary::start(&["--shutdown-grace", "30s"]);
    let channel = server.channel().await;
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest { service: "alertstream.v1.AlertService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let (readings, mut alerts) = open_stream(channel).await;
    readings.send(reading("s", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "s 1 temp_too_low FIRING");

    server.signal("TERM");
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::NotServing);

    // New connections are refused once the server stops accepting.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        // A real listener closing in another process: polled, bounded, no span asserted.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the server still accepts connections after SIGTERM");

    // The open stream goes on being served during the grace period.
    readings.send(reading("s", 2, &[("temperature", 15.0)])).await.unwrap();
    readings.send(reading("s", 3, &[("temperature", 5.0), ("pH", 6.0)])).await.unwrap();
    drop(readings); // half-close
    let (rest, status) = common::collect(alerts).await;
    assert_eq!(
        rest.iter().map(brief).collect::<Vec<_>>(),
        ["s 2 temp_too_low RESOLVED", "s 3 temp_too_low FIRING", "s 3 ph_too_high FIRING"]
    );
    status.unwrap();
    // It exits 0 without waiting on the health watcher that is still open.
    assert_eq!(server.exit_code().await, Some(0));
}

#[tokio::test]
async fn when_the_grace_period_ends_open_streams_get_their_alerts_then_unavailable() {
    let mut server = Binary::start(&["--shutdown-grace", "1s"]);
    let (readings, mut alerts) = open_stream(server.channel().await).await;
    readings.send(reading("s", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "s 1 temp_too_low FIRING");

    server.signal("TERM");
    readings.send(reading("s", 2, &[("temperature", 15.0)])).await.unwrap();
    // The client never half-closes: the stream is ended by the server when the grace period is over.
    let (rest, status) = common::collect(alerts).await;
    assert_eq!(rest.iter().map(brief).collect::<Vec<_>>(), ["s 2 temp_too_low RESOLVED"]);
    let status = status.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unavailable, "server shutting down"));
    assert_eq!(server.exit_code().await, Some(0));
    drop(readings);
}
