//! The three ways the benchmark gets detections from the product: a rules file's FIRING alerts through
//! `alertstream replay`'s code ([`replay`]) and through a live server's gRPC `Stream` ([`live`]), and one
//! expression's value on every row through the engine ([`scores`]), for thresholding per row as NAB scores its own
//! detectors.

use std::{path::Path, time::Duration};

use alertstream_engine::{Alert, StreamState};
use tokio_stream::StreamExt as _;

use super::corpus::Nab;
use crate::{
    BoxError, pb,
    server::{Server, ServerProcess},
};

/// How far a reading may be behind its sensor's latest: one NAB series steps back 55 minutes once.
pub const LATENESS: Duration = Duration::from_secs(3_600);

/// Each series' rows on which a FIRING alert came, by series position.
pub type Detections = Vec<Vec<usize>>;

/// The rows of FIRING alerts (readings' `seq` is their row number from 1) by series, each in row order.
fn collect(nab: &Nab, firing: impl IntoIterator<Item = (String, u64)>) -> Result<Detections, BoxError> {
    let mut rows = vec![Vec::new(); nab.series.len()];
    for (sensor_id, seq) in firing {
        let series = nab.position(&sensor_id).ok_or_else(|| format!("an alert for an unknown sensor {sensor_id}"))?;
        let row = usize::try_from(seq).ok().and_then(|s| s.checked_sub(1)).ok_or("an alert without a reading")?;
        rows[series].push(row);
    }
    for series in &mut rows {
        series.sort_unstable();
    }
    Ok(rows)
}

/// Runs every series through `alertstream replay`'s code with the rules file `rules`, each series a CSV under its
/// opaque sensor id: the FIRING alerts' rows.
///
/// # Errors
/// The rules file is refused, or a file cannot be copied or replayed.
pub fn replay(nab: &Nab, rules: &Path) -> Result<Detections, BoxError> {
    let rule_set = alertstream_rules::load(rules)?.rules;
    let scratch = tempfile::tempdir()?;
    let mut files = Vec::new();
    for series in &nab.series {
        let file = scratch.path().join(format!("{}.csv", series.sensor_id));
        std::fs::copy(&series.path, &file)?;
        files.push(file);
    }
    let mut out = Vec::new();
    alertstream::replay::replay(&rule_set, &files, LATENESS, &mut out)?;
    let mut firing = Vec::new();
    for line in out.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        let alert: serde_json::Value = serde_json::from_slice(line)?;
        if alert["state"] == "ALERT_STATE_FIRING" {
            let seq = alert["reading_seq"].as_str().and_then(|s| s.parse().ok()).ok_or("an alert without a seq")?;
            firing.push((alert["sensor_id"].as_str().unwrap_or_default().to_owned(), seq));
        }
    }
    collect(nab, firing)
}

/// Starts the `alertstream` binary beside this one with `rules` and `--lateness 1h`, streams each series on a
/// connection and stream of its own (each reading with its row's time and its row number as `seq`), and returns the
/// FIRING alerts' rows.
///
/// # Errors
/// The server cannot start, or a stream fails.
pub async fn live(nab: &Nab, rules: &Path) -> Result<Detections, BoxError> {
    let server = ServerProcess::start_with(Server::Alertstream, Some(rules), &["--lateness", "1h"])?;
    let target = server.addr();
    let mut tasks = tokio::task::JoinSet::new();
    for series in &nab.series {
        let readings: Vec<pb::Reading> = series
            .times
            .iter()
            .zip(&series.values)
            .enumerate()
            .map(|(row, (&seconds, &value))| pb::Reading {
                sensor_id: series.sensor_id.clone(),
                values: [("value".to_owned(), value)].into(),
                time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
                seq: row as u64 + 1,
            })
            .collect();
        tasks.spawn(async move {
            let channel = crate::client::connect(target).await?;
            let mut client = pb::alert_service_client::AlertServiceClient::new(channel);
            let mut alerts = client.stream(tokio_stream::iter(readings)).await?.into_inner();
            let mut firing = Vec::new();
            while let Some(alert) = alerts.next().await {
                let alert = alert?;
                if alert.state() == pb::AlertState::Firing {
                    firing.push((alert.sensor_id, alert.reading_seq));
                }
            }
            Ok::<_, BoxError>(firing)
        });
    }
    let mut firing = Vec::new();
    while let Some(done) = tasks.join_next().await {
        firing.extend(done??);
    }
    drop(server);
    collect(nab, firing)
}

/// The value of `expression` (a condition's number, as `anomaly(value)`) on every row of every series, through the
/// engine with the rule `expression > -1e308` notified on every reading: NaN where it has no value (a detector
/// warming up).
///
/// # Errors
/// The expression does not compile, or a file cannot be read.
pub fn scores(nab: &Nab, expression: &str) -> Result<Vec<Vec<f64>>, BoxError> {
    let toml = format!(
        "[[rule]]\nname = \"score\"\ncondition = {condition:?}\nnotify = \"every\"\nmessage = \"score\"\n",
        condition = format!("{expression} > -1e308")
    );
    let rule_set = alertstream_rules::parse("score.toml", &toml)?.rules;
    let mut stream = StreamState::new(nab.series.len(), LATENESS);
    let mut alerts: Vec<Alert> = Vec::new();
    let mut scores = Vec::new();
    for series in &nab.series {
        let mut values = vec![f64::NAN; series.times.len()];
        alertstream::replay::input::read(&series.path, &mut |mut reading| {
            let time = reading.time;
            reading.sensor_id.clone_from(&series.sensor_id);
            rule_set.evaluate(&mut stream, reading, time, &mut alerts);
            for alert in alerts.drain(..) {
                let row = usize::try_from(alert.reading_seq).unwrap_or(0).wrapping_sub(1);
                if let (Some(slot), Some(term)) = (values.get_mut(row), alert.explanation.first()) {
                    *slot = term.value;
                }
            }
        })?;
        scores.push(values);
    }
    Ok(scores)
}
