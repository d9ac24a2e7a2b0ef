//! The engine's ratios to its baselines, measured in pairs: each round times one batch of the baseline and one of
//! the engine back to back (which goes first alternates), so a change of the machine's speed between rounds, which on
//! a shared machine moves criterion's separate runs of the two by ±20 %, touches both sides of a round alike. Reports
//! the median time per reading of each side and the median of the rounds' ratios, with an A/A row (the baseline
//! against itself) for the noise floor. `benches/engine.rs` has the same scenarios under criterion.
//!
//! Run: `cargo bench -p alertstream-engine --bench paired` (about a minute; `-- --rounds N`, 2,000 by default).
//! Under `cargo test` it runs 20 rounds, as a smoke test.

// A bench binary: its items need no docs.
#![allow(missing_docs)]

use std::{
    collections::HashMap,
    hint::black_box,
    time::{Duration, Instant, SystemTime},
};

use alertstream_engine::{Reading, RuleSet, RuleSpec, StreamState};
use common::readings;

mod common;

/// Readings per timed batch.
const BATCH: usize = 1_000;
const LATENESS: Duration = Duration::from_secs(60);

/// The server's embedded default rules, and with `absence` a rule that watches for a minute's silence (never due).
fn default_rules(absence: bool) -> RuleSet {
    let rule = |name: &str, condition: &str, message: &str| RuleSpec {
        name: name.to_owned(),
        condition: Some(condition.to_owned()),
        message: Some(message.to_owned()),
        ..RuleSpec::default()
    };
    let mut specs =
        vec![rule("temp_too_low", "temperature < 10", "temp too low"), rule("ph_too_high", "pH > 5.5", "pH too high")];
    if absence {
        specs.push(RuleSpec {
            name: "silent".into(),
            absent_for: Some(Duration::from_secs(60)),
            ..RuleSpec::default()
        });
    }
    RuleSet::new(specs).unwrap()
}

/// One side of a pair: makes its next batch (untimed), then consumes it (timed).
trait Side {
    fn batch(&mut self) -> Vec<Reading>;
    fn run(&mut self, batch: Vec<Reading>);
}

/// Batches cut in turn from a list of readings, their times moving forward across batches as a live stream's do.
struct Batches {
    readings: Vec<Reading>,
    offset: usize,
    next_time: u64,
}

impl Batches {
    fn new(readings: Vec<Reading>, next_time: u64) -> Self {
        Self { readings, offset: 0, next_time }
    }

    fn next(&mut self) -> Vec<Reading> {
        let batch = (0..BATCH)
            .map(|i| {
                let mut reading = self.readings[(self.offset + i) % self.readings.len()].clone();
                reading.time = SystemTime::UNIX_EPOCH + Duration::from_secs(self.next_time + i as u64);
                reading
            })
            .collect();
        self.offset = (self.offset + BATCH) % self.readings.len();
        self.next_time += BATCH as u64;
        batch
    }
}

/// The baseline: looks up the sensor and the two metrics a default rule reads, and drops the reading.
struct LookupOnly {
    sensors: HashMap<String, usize>,
    batches: Batches,
}

impl Side for LookupOnly {
    fn batch(&mut self) -> Vec<Reading> {
        self.batches.next()
    }

    fn run(&mut self, batch: Vec<Reading>) {
        for reading in batch {
            black_box(self.sensors.get(&reading.sensor_id));
            black_box(reading.values.get("temperature"));
            black_box(reading.values.get("pH"));
        }
    }
}

/// The engine: one stream evaluating every reading with a rule set.
struct Engine {
    rules: RuleSet,
    stream: StreamState,
    out: Vec<alertstream_engine::Alert>,
    batches: Batches,
}

impl Engine {
    /// A stream over `sensors` sensors that has seen each of them once already (so every measured reading is of a
    /// known sensor).
    fn new(rules: RuleSet, sensors: usize) -> Self {
        let warm = readings(sensors.max(BATCH) * 2, sensors);
        let (first, rest) = warm.split_at(sensors.max(BATCH));
        let mut stream = StreamState::new(usize::MAX, LATENESS);
        let mut out = Vec::new();
        for reading in first {
            rules.evaluate(&mut stream, reading.clone(), reading.time, &mut out);
            out.clear();
        }
        let next_time = first.len() as u64;
        Self { rules, stream, out, batches: Batches::new(rest.to_vec(), next_time) }
    }
}

impl Side for Engine {
    fn batch(&mut self) -> Vec<Reading> {
        self.batches.next()
    }

    fn run(&mut self, batch: Vec<Reading>) {
        for reading in batch {
            let now = reading.time;
            self.rules.evaluate(&mut self.stream, reading, now, &mut self.out);
            self.out.clear();
        }
    }
}

fn lookup_only() -> LookupOnly {
    LookupOnly { sensors: HashMap::from([("line-0".to_owned(), 0)]), batches: Batches::new(readings(10 * BATCH, 1), 0) }
}

/// Times one batch of `side`, in nanoseconds per reading.
fn time(side: &mut dyn Side) -> f64 {
    let batch = side.batch();
    let start = Instant::now();
    side.run(batch);
    start.elapsed().as_nanos() as f64 / BATCH as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `rounds` pairs and prints a table row: each side's median time per reading, and the median over rounds of
/// `reference`'s time over `measured`'s (the measured side's throughput relative to the reference).
fn pair(label: &str, target: &str, rounds: usize, reference: &mut dyn Side, measured: &mut dyn Side) {
    for _ in 0..rounds / 10 {
        time(reference);
        time(measured);
    }
    let (mut reference_ns, mut measured_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (r, m) = if round % 2 == 0 {
            let r = time(reference);
            (r, time(measured))
        } else {
            let m = time(measured);
            (time(reference), m)
        };
        reference_ns.push(r);
        measured_ns.push(m);
        ratios.push(r / m);
    }
    println!(
        "| {label} | {:.1} | {:.1} | **{:.2}** | {target} |",
        median(reference_ns),
        median(measured_ns),
        median(ratios)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` runs this as a smoke test of a few rounds.
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut args = std::env::args().skip_while(|a| a != "--rounds").skip(1);
    let rounds = args.next().and_then(|n| n.parse().ok()).unwrap_or(if measuring { 2_000 } else { 20 });
    println!(
        "Paired rounds of {BATCH} readings, {rounds} rounds each; ratio: the measured side's throughput relative to the reference's, the median of the rounds' ratios.\n"
    );
    println!("| measured against reference | reference ns/reading | measured ns/reading | ratio | target |");
    println!("|---|---|---|---|---|");
    pair("A/A: lookup-only against itself", "1.00 ± noise", rounds, &mut lookup_only(), &mut lookup_only());
    pair(
        "default rules against lookup-only",
        "≥ 0.8",
        rounds,
        &mut lookup_only(),
        &mut Engine::new(default_rules(false), 1),
    );
    pair(
        "default rules and an absence rule against lookup-only",
        "≥ 0.7",
        rounds,
        &mut lookup_only(),
        &mut Engine::new(default_rules(true), 1),
    );
    pair(
        "100,000 sensors in turn against 1 sensor (default rules)",
        "≥ 0.85 (end to end)",
        rounds,
        &mut Engine::new(default_rules(false), 1),
        &mut Engine::new(default_rules(false), 100_000),
    );
}
