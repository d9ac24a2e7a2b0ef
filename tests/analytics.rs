//! Streaming analytics through a real server: windows, detectors, absence on an idle stream, event time, templates,
//! scoping, and a reload under a live stream.

mod common;

use std::time::{Duration, SystemTime};

use alertstream::{
    clock::{Clock, ManualClock},
    config::ServeConfig,
    pb,
};
use common::{TestServer, brief, collect, next_alert as next, open_stream, reading};

#[tokio::test]
async fn windows_and_detectors_fire_per_sensor_on_reading_time() {
    let server = TestServer::with_rules(
        r#"
[[rule]]
name = "hot_on_average"
condition = "avg(t, 30s) > 30"

[[rule]]
name = "spike"
condition = "robust_zscore(t, 50) > 6"
"#,
    )
    .await;
    let mut client = server.client().await;
    let mut readings = Vec::new();
    // Sensor a: 20 steady readings 10 s apart around 20, then a spike to 90 (a 30 s average of 43: hot too).
    for i in 0..20u64 {
        readings.push(reading("a", i + 1, &[("t", 20.0 + (i % 3) as f64)]));
        readings.last_mut().unwrap().time = Some(prost_types::Timestamp { seconds: i as i64 * 10, nanos: 0 });
    }
    readings.push(reading("a", 21, &[("t", 90.0)]));
    readings.last_mut().unwrap().time = Some(prost_types::Timestamp { seconds: 200, nanos: 0 });
    // Sensor b: 3 hot readings, too few for the detector's warm-up; its average is hot at once.
    for i in 0..3u64 {
        readings.push(reading("b", 100 + i, &[("t", 95.0)]));
    }
    let (alerts, status) = common::stream_all(&mut client, readings).await;
    status.unwrap();
    assert_eq!(
        alerts.iter().map(brief).collect::<Vec<_>>(),
        ["a 21 hot_on_average FIRING", "a 21 spike FIRING", "b 100 hot_on_average FIRING"]
    );
}

#[tokio::test]
async fn absence_fires_on_an_idle_stream_and_resolves_on_the_next_reading() {
    // The server's clock is a manual one: silence is made by advancing it, not by waiting.
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clock = ManualClock::new(start);
    let config = ServeConfig { clock: Clock::Manual(clock.clone()), ..ServeConfig::default() };
    let rules = alertstream_rules::parse(
        "absence.toml",
        // `seen` answers every reading, so the test knows the server has taken it before it moves the clock.
        "[[rule]]\nname = \"silent\"\nabsent_for = \"30s\"\nmessage = \"{sensor_id} went quiet\"\n\n\
         [[rule]]\nname = \"seen\"\ncondition = \"t > 0\"\nnotify = \"every\"\n",
    )
    .unwrap()
    .rules;
    let server = TestServer::with(rules, config).await;
    let (tx, mut alerts) = open_stream(server.channel().await).await;
    tx.send(reading("line-1", 7, &[("t", 1.5)])).await.unwrap();
    assert_eq!(brief(&next(&mut alerts).await), "line-1 7 seen FIRING");
    // 29 s of silence is not enough; 30 s is. The alert carries the server's time when it fired: had it fired at
    // 29 s, that would show.
    clock.advance(Duration::from_secs(29));
    clock.advance(Duration::from_secs(1));
    let fired = next(&mut alerts).await;
    assert_eq!(brief(&fired), "line-1 7 silent FIRING");
    assert_eq!(fired.message, "line-1 went quiet");
    assert_eq!(fired.values, [("t".to_owned(), 1.5)].into());
    assert_eq!(SystemTime::try_from(fired.time.unwrap()).unwrap(), start + Duration::from_secs(30));
    // The next reading ends the silence.
    tx.send(reading("line-1", 8, &[("t", 1.5)])).await.unwrap();
    assert_eq!(brief(&next(&mut alerts).await), "line-1 8 silent RESOLVED");
    assert_eq!(brief(&next(&mut alerts).await), "line-1 8 seen FIRING");
    // Watched again: a second silence fires again, 30 s after that reading.
    clock.advance(Duration::from_secs(30));
    let again = next(&mut alerts).await;
    assert_eq!(brief(&again), "line-1 8 silent FIRING");
    assert_eq!(SystemTime::try_from(again.time.unwrap()).unwrap(), start + Duration::from_secs(60));
    // After a half-close nothing more is owed for absence: the stream ends OK.
    drop(tx);
    let (rest, status) = collect(alerts).await;
    status.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn late_readings_are_events_beyond_the_lateness() {
    let config = ServeConfig { lateness: Duration::from_secs(5), ..ServeConfig::default() };
    let server = TestServer::with(alertstream::config::default_rules(), config).await;
    let mut client = server.client().await;
    let at = |seq: u64, secs: i64, t: f64| {
        let mut r = reading("s", seq, &[("temperature", t)]);
        r.time = Some(prost_types::Timestamp { seconds: secs, nanos: 0 });
        r
    };
    let (alerts, status) =
        common::stream_all(&mut client, vec![at(1, 100, 20.0), at(2, 90, 5.0), at(3, 97, 5.0)]).await;
    status.unwrap();
    let got: Vec<(String, String)> = alerts.iter().map(|a| (brief(a), a.message.clone())).collect();
    assert_eq!(got[0].0, "s 2 late_reading FIRING");
    assert_eq!(got[0].1, "late reading: 10s behind sensor `s`'s latest, over the allowed lateness of 5s; not applied");
    assert_eq!(got[1].0, "s 3 temp_too_low FIRING");
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn templates_and_scoping() {
    let server = TestServer::with_rules(
        r#"
[[rule]]
name = "cold"
condition = "temperature < 10"
message = "temperature {temperature} below 10 on {sensor_id}"
sensors = ["line-1/*"]
"#,
    )
    .await;
    let mut client = server.client().await;
    let readings =
        vec![reading("line-1/oven", 1, &[("temperature", 8.0)]), reading("line-2/oven", 2, &[("temperature", 8.0)])];
    let (alerts, status) = common::stream_all(&mut client, readings).await;
    status.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].message, "temperature 8 below 10 on line-1/oven");
}

#[tokio::test]
async fn a_reload_under_a_live_stream_loses_no_alert() {
    let old = "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n\n[[rule]]\nname = \"warm\"\ncondition = \"t > 20\"\n";
    let server = TestServer::with_rules(old).await;
    let (tx, mut alerts) = open_stream(server.channel().await).await;
    tx.send(reading("a", 1, &[("t", 35.0)])).await.unwrap();
    assert_eq!(brief(&next(&mut alerts).await), "a 1 hot FIRING");
    assert_eq!(brief(&next(&mut alerts).await), "a 1 warm FIRING");
    // hot stays as it was; warm changes (so resolves now); cold is new.
    let new = "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\n\n[[rule]]\nname = \"warm\"\ncondition = \"t > 25\"\n\n[[rule]]\nname = \"cold\"\ncondition = \"t < 0\"\n";
    server.rules.send_replace(std::sync::Arc::new(alertstream_rules::parse("new.toml", new).unwrap().rules));
    assert_eq!(brief(&next(&mut alerts).await), "a 1 warm RESOLVED");
    tx.send(reading("a", 2, &[("t", -5.0)])).await.unwrap();
    tx.send(reading("a", 3, &[("t", 28.0)])).await.unwrap();
    drop(tx);
    let (rest, status) = collect(alerts).await;
    status.unwrap();
    assert_eq!(
        rest.iter().map(brief).collect::<Vec<_>>(),
        ["a 2 hot RESOLVED", "a 2 cold FIRING", "a 3 warm FIRING", "a 3 cold RESOLVED"]
    );
    // New calls see the new rules.
    let listed = server.client().await.list_rules(pb::ListRulesRequest {}).await.unwrap().into_inner().rules;
    assert_eq!(listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["hot", "warm", "cold"]);
}

#[tokio::test]
async fn lag_abs_greatest_and_least_through_a_real_stream() {
    let server = TestServer::with_rules(
        "[[rule]]\nname = \"jump\"\ncondition = \"abs(t - lag(t, 1)) > 5\"\n\n\
         [[rule]]\nname = \"day\"\ncondition = \"t > 2 * lag(t, 1d)\"\n\n\
         [[rule]]\nname = \"span\"\ncondition = \"greatest(t, u) - least(t, u) > 50\"\n",
    )
    .await;
    let day = 86_400;
    // `reading` stamps seq N at N seconds: the readings of a day later are 86,400 seqs on.
    let readings = vec![
        reading("s", 1, &[("t", 10.0), ("u", 0.0)]),
        reading("s", 2, &[("t", 30.0), ("u", 0.0)]),
        reading("s", 3, &[("t", 31.0), ("u", 0.0)]),
        reading("s", 2 + day, &[("t", 61.0), ("u", 0.0)]),
    ];
    let (alerts, status) = common::stream_all(&mut server.client().await, readings).await;
    status.unwrap();
    assert_eq!(
        alerts.iter().map(brief).collect::<Vec<_>>(),
        [
            // No lag on the first reading; then a jump of 20 fires, and one of 1 resolves.
            "s 2 jump FIRING",
            "s 3 jump RESOLVED",
            // A day after reading 2 (t = 30): 61 > 60, and a jump of 30; t - u = 61 > 50.
            "s 86402 jump FIRING",
            "s 86402 day FIRING",
            "s 86402 span FIRING",
        ]
    );
}

#[tokio::test]
async fn the_default_detector_fires_on_a_broken_daily_shape_through_a_real_stream() {
    // examples/anomaly.toml, the rules file the NAB benchmark scores, as a user would run it.
    let server = TestServer::with_rules(include_str!("../examples/anomaly.toml")).await;
    // A "day" of 48 readings: a sine between 10 and 30. Thirty days of it, then the middle of a day flattens at
    // the mean for 40 readings (NAB's art_daily_flatmiddle in small): no value is new, only the shape is.
    let day = 48;
    let normal = |i: u64| 20.0 + 10.0 * ((i % day) as f64 / day as f64 * std::f64::consts::TAU).sin();
    let broken_from = 30 * day + day / 2 + 1;
    let readings: Vec<pb::Reading> = (1..=33 * day)
        .map(|seq| {
            let value = if (broken_from..broken_from + 40).contains(&seq) { 20.0 } else { normal(seq) };
            reading("press-1", seq, &[("value", value)])
        })
        .collect();
    let (alerts, status) = common::stream_all(&mut server.client().await, readings).await;
    status.unwrap();
    let firing: Vec<&pb::Alert> = alerts.iter().filter(|a| a.state() == pb::AlertState::Firing).collect();
    assert!(!firing.is_empty(), "the flat middle went unnoticed");
    let first = firing[0];
    assert_eq!(first.rule, "unusual_pattern", "{}", brief(first));
    assert!(
        (broken_from..broken_from + 40).contains(&first.reading_seq),
        "nothing fires on the familiar days, and the break fires while it lasts: {}",
        brief(first)
    );
    assert_eq!(first.explanation[0].expression, "anomaly(value, 10000)");
    assert!(first.explanation[0].value > 0.7);
}
