//! `AlertService.Stream` through a real server: state machines, gateways, invalid readings, half-close.

mod common;

use alertstream::{
    clock::{Clock, ManualClock},
    config::{ServeConfig, default_rules},
    pb,
};
use common::{TestServer, brief, reading, stream_all};

#[tokio::test]
async fn interleaved_sensors_get_exact_firing_and_resolved_sequences() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // Three sensors, interleaved; each has its own state per rule.
    let script: &[(&str, f64, f64)] = &[
        ("a", 12.0, 5.0), // nothing: a sensor starts not firing
        ("b", 8.0, 5.0),  // b temp FIRING
        ("c", 8.0, 6.0),  // c temp FIRING, c pH FIRING
        ("a", 9.0, 5.0),  // a temp FIRING
        ("b", 7.0, 6.0),  // b pH FIRING (temp still firing: no repeat in change mode)
        ("c", 12.0, 6.0), // c temp RESOLVED
        ("a", 9.5, 5.6),  // a pH FIRING
        ("b", 11.0, 5.0), // b temp RESOLVED, b pH RESOLVED
        ("c", 12.0, 5.0), // c pH RESOLVED
        ("a", 10.0, 5.5), // a temp RESOLVED, a pH RESOLVED (boundaries are not crossings)
    ];
    let readings = script
        .iter()
        .enumerate()
        .map(|(i, (sensor, t, ph))| reading(sensor, i as u64 + 1, &[("temperature", *t), ("pH", *ph)]))
        .collect();
    let (alerts, status) = stream_all(&mut client, readings).await;
    status.unwrap();
    let got: Vec<String> = alerts.iter().map(brief).collect();
    assert_eq!(
        got,
        [
            "b 2 temp_too_low FIRING",
            "c 3 temp_too_low FIRING",
            "c 3 ph_too_high FIRING",
            "a 4 temp_too_low FIRING",
            "b 5 ph_too_high FIRING",
            "c 6 temp_too_low RESOLVED",
            "a 7 ph_too_high FIRING",
            "b 8 temp_too_low RESOLVED",
            "b 8 ph_too_high RESOLVED",
            "c 9 ph_too_high RESOLVED",
            "a 10 temp_too_low RESOLVED",
            "a 10 ph_too_high RESOLVED",
        ]
    );
}

#[tokio::test]
async fn alerts_carry_every_field_of_the_reading_and_rule() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let sent = reading("line-1", 42, &[("temperature", 8.5), ("pH", 4.0)]);
    let (alerts, status) = stream_all(&mut client, vec![sent.clone()]).await;
    status.unwrap();
    assert_eq!(
        alerts,
        [pb::Alert {
            sensor_id: "line-1".into(),
            rule: "temp_too_low".into(),
            state: pb::AlertState::Firing as i32,
            severity: pb::Severity::Warning as i32,
            message: "temp too low".into(),
            reading_seq: 42,
            time: sent.time,
            values: sent.values,
            // Why it fired: the comparison, its side's value and the threshold.
            explanation: vec![pb::Term {
                expression: "temperature".into(),
                value: 8.5,
                operator: "<".into(),
                threshold: 10.0,
            }],
        }]
    );
}

#[tokio::test]
async fn a_reading_without_time_or_seq_gets_the_receive_time_and_seq_zero() {
    let received_at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let clock = Clock::Manual(ManualClock::new(received_at));
    let server = TestServer::with(default_rules(), ServeConfig { clock, ..ServeConfig::default() }).await;
    let mut client = server.client().await;
    let mut sent = reading("s", 0, &[("temperature", 1.0)]);
    sent.time = None;
    let (alerts, status) = stream_all(&mut client, vec![sent]).await;
    status.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].reading_seq, 0);
    assert_eq!(std::time::SystemTime::try_from(alerts[0].time.unwrap()).unwrap(), received_at);
}

#[tokio::test]
async fn invalid_readings_are_reported_in_band_and_the_stream_goes_on() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let long_id = "x".repeat(257);
    let readings = vec![
        reading("a", 1, &[("temperature", 8.0)]),
        reading("a", 2, &[("temperature", f64::NAN)]),
        reading("", 3, &[("temperature", 20.0)]),
        reading(&long_id, 4, &[("temperature", 1.0)]),
        reading("a", 5, &[]),
        reading("a", 6, &[("", 1.0)]),
        reading("a", 7, &[("temperature", f64::INFINITY)]),
        reading("a", 8, &[("temperature", 20.0)]),
    ];
    let (alerts, status) = stream_all(&mut client, readings).await;
    status.unwrap();
    let got: Vec<(String, String)> = alerts.iter().map(|a| (brief(a), a.message.clone())).collect();
    let invalid = |sensor: &str, seq: u64, message: &str| {
        (format!("{sensor} {seq} invalid_reading FIRING"), format!("invalid reading: {message}"))
    };
    assert_eq!(
        got,
        [
            ("a 1 temp_too_low FIRING".to_owned(), "temp too low".to_owned()),
            invalid("a", 2, "values[\"temperature\"] is NaN"),
            invalid("", 3, "sensor_id is empty"),
            invalid(&long_id, 4, "sensor_id is 257 bytes, over the limit of 256"),
            invalid("a", 5, "values is empty: a reading needs at least one metric"),
            invalid("a", 6, "values has an empty metric name"),
            invalid("a", 7, "values[\"temperature\"] is infinite"),
            // The invalid readings changed no state: the sensor was still firing.
            ("a 8 temp_too_low RESOLVED".to_owned(), "resolved: temp too low".to_owned()),
        ]
    );
    assert!(alerts[1..7].iter().all(|a| a.severity == pb::Severity::Warning as i32));
}

#[tokio::test]
async fn a_reading_of_more_metrics_than_the_limit_is_invalid_and_changes_no_state() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // The limit (1,024) and far past it: the second's alert echoes at most one metric past the limit.
    let many = |count: usize, temperature: f64| -> Vec<(String, f64)> {
        std::iter::once(("temperature".to_owned(), temperature))
            .chain((1..count).map(|i| (format!("m{i}"), 1.0)))
            .collect()
    };
    let at_limit = many(alertstream_engine::MAX_METRICS, 8.0);
    let over = many(alertstream_engine::MAX_METRICS + 1, 20.0);
    let far_over = many(10 * alertstream_engine::MAX_METRICS, 20.0);

    fn borrowed(values: &[(String, f64)]) -> Vec<(&str, f64)> {
        values.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }
    let readings = vec![
        reading("a", 1, &borrowed(&at_limit)),
        reading("a", 2, &borrowed(&over)),
        reading("a", 3, &borrowed(&far_over)),
        reading("a", 4, &[("temperature", 20.0)]),
    ];
    let (alerts, status) = stream_all(&mut client, readings).await;
    status.unwrap();
    let got: Vec<String> = alerts.iter().map(|a| format!("{} {}", brief(a), a.message)).collect();
    let over_message = "invalid reading: values has more than 1024 metrics, the limit";
    assert_eq!(
        got,
        [
            "a 1 temp_too_low FIRING temp too low".to_owned(),
            format!("a 2 invalid_reading FIRING {over_message}"),
            format!("a 3 invalid_reading FIRING {over_message}"),
            // Neither changed the sensor's state: it was still firing.
            "a 4 temp_too_low RESOLVED resolved: temp too low".to_owned(),
        ]
    );
    // Echoed with the names of the first entries up to the limit, not all of them.
    assert_eq!(alerts[2].values.len(), alertstream_engine::MAX_METRICS);
}

#[tokio::test]
async fn half_close_delivers_every_alert_owed_then_ok() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // 2,000 readings that alternate, so every reading yields exactly one alert.
    let readings: Vec<_> = (1..=2_000u64)
        .map(|seq| reading("s", seq, &[("temperature", if seq % 2 == 1 { 5.0 } else { 15.0 })]))
        .collect();
    let (alerts, status) = stream_all(&mut client, readings).await;
    status.unwrap();
    assert_eq!(alerts.len(), 2_000);
    for (i, alert) in alerts.iter().enumerate() {
        let seq = i as u64 + 1;
        let state = if seq % 2 == 1 { pb::AlertState::Firing } else { pb::AlertState::Resolved };
        assert_eq!((alert.reading_seq, alert.state), (seq, state as i32));
    }
}

#[tokio::test]
async fn a_custom_rules_file_drives_for_every_and_severity() {
    let server = TestServer::with_rules(
        r#"
[[rule]]
name = "hot"
condition = "temperature > 30"
severity = "critical"
message = "too hot"
for = "3 readings"

[[rule]]
name = "acid"
condition = "`line-1.pH` < 4 && not temperature > 100"
notify = "every"

[[rule]]
name = "slow_drift"
condition = "(temperature - 20) / 2 >= 5"
severity = "info"
for = "30s"
"#,
    )
    .await;
    let mut client = server.client().await;
    let at = |seq: u64, secs: i64, values: &[(&str, f64)]| {
        let mut r = reading("s", seq, values);
        r.time = Some(prost_types::Timestamp { seconds: secs, nanos: 0 });
        r
    };
    let readings = vec![
        at(1, 0, &[("temperature", 31.0), ("line-1.pH", 3.0)]),
        at(2, 10, &[("temperature", 31.0), ("line-1.pH", 3.0)]),
        at(3, 20, &[("temperature", 31.0)]),
        at(4, 30, &[("temperature", 31.0), ("line-1.pH", 5.0)]),
        at(5, 40, &[("temperature", 25.0)]),
    ];
    let (alerts, status) = stream_all(&mut client, readings).await;
    status.unwrap();
    let got: Vec<String> =
        alerts.iter().map(|a| format!("{} sev={} msg={}", brief(a), a.severity, a.message)).collect();
    assert_eq!(
        got,
        [
            "s 1 acid FIRING sev=2 msg=acid",
            "s 2 acid FIRING sev=2 msg=acid",
            "s 3 hot FIRING sev=3 msg=too hot",
            "s 4 acid RESOLVED sev=2 msg=resolved: acid",
            "s 4 slow_drift FIRING sev=1 msg=slow_drift",
            "s 5 hot RESOLVED sev=3 msg=resolved: too hot",
            "s 5 slow_drift RESOLVED sev=1 msg=resolved: slow_drift",
        ]
    );
}

#[tokio::test]
async fn sensors_beyond_the_stream_limit_get_an_in_band_event() {
    let config = ServeConfig { max_sensors_per_stream: 2, ..Default::default() };
    let server = TestServer::with(default_rules(), config).await;
    let mut client = server.client().await;
    let readings = vec![
        reading("a", 1, &[("temperature", 5.0)]),
        reading("b", 2, &[("temperature", 5.0)]),
        reading("c", 3, &[("temperature", 5.0)]),
        reading("a", 4, &[("temperature", 15.0)]),
    ];
    let (alerts, status) = stream_all(&mut client, readings).await;
    status.unwrap();
    let got: Vec<String> = alerts.iter().map(brief).collect();
    assert_eq!(
        got,
        ["a 1 temp_too_low FIRING", "b 2 temp_too_low FIRING", "c 3 sensor_limit FIRING", "a 4 temp_too_low RESOLVED"]
    );
    assert_eq!(alerts[2].severity, pb::Severity::Warning as i32);
    // Each stream has its own limit and state: a second stream starts empty.
    let (alerts, status) = stream_all(&mut client, vec![reading("c", 5, &[("temperature", 5.0)])]).await;
    status.unwrap();
    assert_eq!(alerts.iter().map(brief).collect::<Vec<_>>(), ["c 5 temp_too_low FIRING"]);
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_stream() {
    // A long grace period: shutdown would wait it out if the abandoned stream were still open.
    let config = ServeConfig { shutdown_grace: std::time::Duration::from_secs(300), ..Default::default() };
    let mut server = TestServer::with(default_rules(), config).await;
    let mut client = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut alerts = client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    tx.send(reading("s", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(brief(&alerts.message().await.unwrap().unwrap()), "s 1 temp_too_low FIRING");
    // The client vanishes without half-closing: its connection closes with the stream still open.
    drop((tx, alerts, client));
    server.drain.cancel();
    let done = tokio::time::timeout(std::time::Duration::from_secs(60), &mut server.handle).await;
    done.expect("shutdown did not wait on the abandoned stream").unwrap().unwrap();
}

#[tokio::test]
async fn a_reading_from_too_far_ahead_is_invalid_and_does_not_blind_its_sensor() {
    let now = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let clock = Clock::Manual(ManualClock::new(now));
    let server = TestServer::with(default_rules(), ServeConfig { clock, ..ServeConfig::default() }).await;
    let mut client = server.client().await;
    let at = |seq: u64, seconds: i64, temperature: f64| {
        let mut r = reading("s", seq, &[("temperature", temperature)]);
        r.time = Some(prost_types::Timestamp { seconds: 1_700_000_000 + seconds, nanos: 0 });
        r
    };
    let mut year_9999 = reading("s", 4, &[("temperature", 5.0)]);
    year_9999.time = Some(prost_types::Timestamp { seconds: 253_402_300_799, nanos: 0 });
    // An hour ahead: refused. 59 s ahead: within the default 1m, applied. Then a reading on time is neither late
    // nor ignored, and one from the year 9999 is refused too.
    let readings = vec![at(1, 3_600, 5.0), at(2, 59, 5.0), at(3, 0, 15.0), year_9999];
    let (alerts, status) = stream_all(&mut client, readings).await;
    status.unwrap();
    assert_eq!(
        alerts.iter().map(brief).collect::<Vec<_>>(),
        [
            "s 1 invalid_reading FIRING",
            "s 2 temp_too_low FIRING",
            "s 3 temp_too_low RESOLVED",
            "s 4 invalid_reading FIRING"
        ]
    );
    assert_eq!(alerts[0].message, "invalid reading: time is 1h ahead of the server's clock, over the allowed 1m");

    // Evaluate refuses it as INVALID_ARGUMENT.
    let refused = client.evaluate(at(5, 3_600, 5.0)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("time is 1h ahead"), "{refused:?}");
}

#[tokio::test]
async fn beyond_max_streams_a_stream_is_refused_at_once_and_the_others_go_on() {
    let config = ServeConfig { max_streams: 2, ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    // Two streams on two connections, each answered.
    let (first, mut first_alerts) = common::open_stream(server.channel().await).await;
    let (second, mut second_alerts) = common::open_stream(server.channel().await).await;
    for (tx, alerts) in [(&first, &mut first_alerts), (&second, &mut second_alerts)] {
        tx.send(reading("s", 1, &[("temperature", 8.0)])).await.unwrap();
        assert_eq!(brief(&common::next_alert(alerts).await), "s 1 temp_too_low FIRING");
    }
    // A third is refused, twice, each time on a new connection.
    for channel in [server.channel().await, server.channel().await] {
        let refused = server_stream(channel).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
        assert!(refused.message().contains("at most 2"), "{refused:?}");
    }
    // The open streams are untouched.
    second.send(reading("s", 2, &[("temperature", 12.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut second_alerts).await), "s 2 temp_too_low RESOLVED");
    // One ends; its place is free as soon as its client has seen the end.
    drop(first);
    let (rest, status) = common::collect(first_alerts).await;
    assert!(rest.is_empty() && status.is_ok(), "{rest:?} {status:?}");
    let (third, mut third_alerts) = common::open_stream(server.channel().await).await;
    third.send(reading("t", 1, &[("temperature", 8.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut third_alerts).await), "t 1 temp_too_low FIRING");
}

/// Opens a stream and sends nothing yet; the server's answer to the opening.
async fn server_stream(channel: tonic::transport::Channel) -> Result<tonic::Streaming<pb::Alert>, tonic::Status> {
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::Reading>(1);
    let response = pb::alert_service_client::AlertServiceClient::new(channel)
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?;
    Ok(response.into_inner())
}

#[tokio::test]
async fn readings_over_the_streams_rate_are_not_applied_and_yield_rate_limited_events() {
    let manual = ManualClock::new(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
    let config =
        ServeConfig { clock: Clock::Manual(manual.clone()), max_readings_per_second: 3, ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    let channel = server.channel().await;
    let (readings, mut alerts) = common::open_stream(channel.clone()).await;
    // Five readings at one instant: the first three are applied (one alert each), the other two are not.
    for (seq, temperature) in [(1, 5.0), (2, 20.0), (3, 5.0), (4, 20.0), (5, 20.0)] {
        readings.send(reading("s", seq, &[("temperature", temperature)])).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(common::next_alert(&mut alerts).await);
    }
    assert_eq!(
        seen.iter().map(brief).collect::<Vec<_>>(),
        [
            "s 1 temp_too_low FIRING",
            "s 2 temp_too_low RESOLVED",
            "s 3 temp_too_low FIRING",
            "s 4 rate_limited FIRING",
            "s 5 rate_limited FIRING"
        ]
    );
    assert_eq!(seen[3].severity, pb::Severity::Warning as i32);
    assert!(seen[3].message.contains("at most 3 readings a second"), "{}", seen[3].message);
    // Another stream has its own rate.
    let (other, other_alerts) = common::open_stream(channel).await;
    other.send(reading("t", 1, &[("temperature", 5.0)])).await.unwrap();
    drop(other);
    let (other_seen, status) = common::collect(other_alerts).await;
    assert_eq!(other_seen.iter().map(brief).collect::<Vec<_>>(), ["t 1 temp_too_low FIRING"], "{status:?}");
    // A third of a second on the server's clock frees one reading: seq 4 was never applied, so 6 resolves.
    manual.advance(std::time::Duration::from_millis(334));
    readings.send(reading("s", 6, &[("temperature", 20.0)])).await.unwrap();
    readings.send(reading("s", 7, &[("temperature", 5.0)])).await.unwrap();
    drop(readings);
    let (rest, status) = common::collect(alerts).await;
    assert!(status.is_ok(), "{status:?}");
    assert_eq!(rest.iter().map(brief).collect::<Vec<_>>(), ["s 6 temp_too_low RESOLVED", "s 7 rate_limited FIRING"]);
}

#[tokio::test]
async fn a_stream_ends_deadline_exceeded_at_the_clients_deadline_and_frees_its_place() {
    let manual = ManualClock::new(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
    let config = ServeConfig { clock: Clock::Manual(manual.clone()), max_streams: 1, ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    let (readings, rx) = tokio::sync::mpsc::channel(4);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request.set_timeout(std::time::Duration::from_secs(30));
    let mut client = server.client().await;
    let mut alerts = client.stream(request).await.unwrap().into_inner();
    readings.send(reading("s", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut alerts).await), "s 1 temp_too_low FIRING");
    // Before the deadline, the stream goes on.
    manual.advance(std::time::Duration::from_secs(29));
    readings.send(reading("s", 2, &[("temperature", 20.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut alerts).await), "s 2 temp_too_low RESOLVED");
    // At the deadline (the client still has it open), the server ends it.
    manual.advance(std::time::Duration::from_secs(1));
    let (rest, status) = common::collect(alerts).await;
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(status.unwrap_err().code(), tonic::Code::DeadlineExceeded);
    // Its place under --max-streams is free: a new stream is served.
    let (again, mut again_alerts) = common::open_stream(server.channel().await).await;
    again.send(reading("t", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(brief(&common::next_alert(&mut again_alerts).await), "t 1 temp_too_low FIRING");
    drop(readings);
}
