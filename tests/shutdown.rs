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

/// SIGTERM with 1,000 streams open under load (5 connections of 200 streams, each stream sending a reading every
/// 20 ms while its alerts are read: 50,000 readings a second in all): every reading a stream sent before it saw the
/// signal is answered, in order; streams that half-close within the grace period end OK, the rest UNAVAILABLE; the
/// process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_reading_sent_before_it() {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64, Ordering},
        },
        time::Instant,
    };

    const STREAMS: usize = 1_000;
    let mut server = Binary::start(&["--shutdown-grace", "5s"]);
    let mut channels = Vec::new();
    for _ in 0..5 {
        channels.push(server.channel().await);
    }
    let mut opened = Vec::new();
    for i in 0..STREAMS {
        opened.push(open_stream(channels[i % channels.len()].clone()).await);
    }
    let signalled = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for (i, (readings, mut alerts)) in opened.into_iter().enumerate() {
        let (signalled, answered) = (Arc::clone(&signalled), Arc::clone(&answered));
        let sender = tokio::spawn(async move {
            // Returns the last seq sent before this stream saw the signal.
            let mut seq = 0u64;
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            loop {
                pace.tick().await;
                if signalled.load(Ordering::SeqCst) {
                    if i % 2 == 0 {
                        drop(readings); // half-close within the grace period
                    } else {
                        // Keep the stream open (never half-closed) until the server ends it.
                        readings.closed().await;
                    }
                    return seq;
                }
                let temperature = if seq.is_multiple_of(2) { 5.0 } else { 15.0 };
                if readings.send(reading(&format!("s{i}"), seq + 1, &[("temperature", temperature)])).await.is_err() {
                    return seq;
                }
                seq += 1;
            }
        });
        let reader = tokio::spawn(async move {
            let mut last = 0u64;
            loop {
                match alerts.message().await {
                    Ok(Some(alert)) => {
                        assert_eq!(alert.reading_seq, last + 1, "stream {i}: alerts in order");
                        last = alert.reading_seq;
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => return (last, Ok(())),
                    Err(status) => return (last, Err(status)),
                }
            }
        });
        streams.push((sender, reader));
    }
    // Under load: wait until five alerts a stream have come back (a real server: polled, bounded).
    for _ in 0..1_200 {
        if answered.load(Ordering::Relaxed) >= 5 * STREAMS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered.load(Ordering::Relaxed) >= 5 * STREAMS as u64, "the load never got going");

    server.signal("TERM");
    let signalled_at = Instant::now();
    signalled.store(true, Ordering::SeqCst);
    let (mut ok, mut unavailable) = (0, 0);
    for (i, (sender, reader)) in streams.into_iter().enumerate() {
        let (last, status) = tokio::time::timeout(Duration::from_secs(120), reader).await.expect("bounded").unwrap();
        let sent_before = sender.await.unwrap();
        assert!(last >= sent_before, "stream {i}: {last} alerts for {sent_before} readings sent before the signal");
        match status {
            Ok(()) => {
                assert_eq!(i % 2, 0, "stream {i} ended OK without half-closing");
                ok += 1;
            }
            Err(status) => {
                assert_eq!((i % 2, status.code(), status.message()), (1, Code::Unavailable, "server shutting down"));
                unavailable += 1;
            }
        }
    }
    assert_eq!((ok, unavailable), (STREAMS / 2, STREAMS / 2));
    assert_eq!(server.exit_code().await, Some(0));
    eprintln!("exited {:.2} s after SIGTERM (grace 5 s)", signalled_at.elapsed().as_secs_f64());
}

#[tokio::test]
async fn a_browser_watching_the_live_view_does_not_hold_up_the_shutdown() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut server = Binary::start(&["--http-listen", "127.0.0.1:0", "--shutdown-grace", "1s"]);
    let http = server.http_addr().await;
    let mut watcher = tokio::net::TcpStream::connect(http).await.unwrap();
    watcher.write_all(format!("GET /events HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes()).await.unwrap();
    let mut head = vec![0u8; 4096];
    let n = watcher.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).contains("text/event-stream"));
    server.signal("TERM");
    assert_eq!(server.exit_code().await, Some(0));
    // The event stream ended with the HTTP endpoint, rather than being cut at the hard deadline.
    assert_eq!(server.count_log("Connections still open after shutdown"), 0);
    assert_eq!(server.count_log("Shut down."), 1);
}
