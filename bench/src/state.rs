//! What durable sensor state (`--state-dir`) costs: a stream of N sensors, each after some readings, snapshotted,
//! saved to the embedded store in one batch, loaded back and restored into a fresh stream, each step timed, for the
//! default rules and for rules with windows and a detector. The stream and the store are the product's own; no
//! server runs.

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use alertstream::{
    clock::Clock,
    state_store::{EmbeddedStore, Expect, StateStore, Write},
};
use alertstream_engine::{Reading, RuleSet, StreamState};

use crate::BoxError;

/// The rule sets measured: the default rules, and windows with the default detector.
const RULE_SETS: [(&str, &str); 2] = [
    ("default rules", alertstream::config::DEFAULT_RULES),
    (
        "zscore(t, 100), avg(t, 100), anomaly(t)",
        "[[rule]]\nname = \"z\"\ncondition = \"zscore(temperature, 100) > 4\"\n\n\
         [[rule]]\nname = \"hot\"\ncondition = \"avg(temperature, 100) > 30\"\n\n\
         [[rule]]\nname = \"odd\"\ncondition = \"anomaly(temperature) > 0.7\"\n",
    ),
];

/// Runs the measurement for `sensors` sensors, each fed `readings` readings first, and returns a Markdown table.
///
/// # Errors
/// A scratch directory or the store cannot be made, or a save or load fails.
pub fn run(sensors: usize, readings: u64) -> Result<String, BoxError> {
    let mut out = format!(
        "{sensors} sensors, {readings} readings each before the save.\n\n\
         | rules | snapshot all | save (one batch) | load and restore all | bytes per sensor | file |\n\
         |---|---|---|---|---|---|\n"
    );
    for (name, text) in RULE_SETS {
        let rules = alertstream_rules::parse("measure.toml", text)?.rules;
        let stream = fed(&rules, sensors, readings);
        let scratch = tempfile::tempdir()?;
        let store = Arc::new(EmbeddedStore::open(scratch.path(), Duration::from_secs(86_400), Clock::System)?);

        let started = Instant::now();
        let batch: Vec<Write> = (0..sensors)
            .map(|i| {
                let sensor_id = sensor(i);
                let value = rules.snapshot(&stream, &sensor_id).unwrap_or_default();
                Write { sensor_id, value, expect: Expect::Absent }
            })
            .collect();
        let snapshot = started.elapsed();
        let bytes: usize = batch.iter().map(|write| write.value.len()).sum();

        let started = Instant::now();
        store.save(&batch)?;
        let save = started.elapsed();

        let started = Instant::now();
        let mut restored = StreamState::new(sensors, Duration::from_secs(60));
        for i in 0..sensors {
            let id = sensor(i);
            let saved = store.load(&id)?.ok_or("a saved state is missing")?;
            rules.restore(&mut restored, &id, &saved.value, SystemTime::UNIX_EPOCH)?;
        }
        let restore = started.elapsed();
        let file = std::fs::metadata(scratch.path().join("state.redb"))?.len();
        let _ = writeln!(
            out,
            "| {name} | {:.2} s | {:.2} s | {:.2} s | {} | {:.1} MB |",
            snapshot.as_secs_f64(),
            save.as_secs_f64(),
            restore.as_secs_f64(),
            bytes / sensors.max(1),
            file as f64 / 1e6
        );
    }
    Ok(out)
}

fn sensor(i: usize) -> String {
    format!("line-{i}")
}

/// A stream of `sensors` sensors, each fed `readings` readings one second apart, wandering around 20.
fn fed(rules: &RuleSet, sensors: usize, readings: u64) -> StreamState {
    let mut stream = StreamState::new(sensors, Duration::from_secs(60));
    let mut alerts = Vec::new();
    for seq in 1..=readings {
        for i in 0..sensors {
            let temperature = 20.0 + ((seq * 7 + i as u64 * 13) % 17) as f64 * 0.3;
            let reading = Reading {
                sensor_id: sensor(i),
                values: [("temperature".to_owned(), temperature), ("pH".to_owned(), 5.0)].into_iter().collect(),
                seq,
                time: SystemTime::UNIX_EPOCH + Duration::from_secs(seq),
            };
            let time = reading.time;
            rules.evaluate(&mut stream, reading, time, &mut alerts);
            alerts.clear();
        }
    }
    stream
}
