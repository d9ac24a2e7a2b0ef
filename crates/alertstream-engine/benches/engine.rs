//! Benchmarks of the rule engine alone (no gRPC): readings per second for the default rules (and with an absence
//! rule added) beside a baseline that only looks up the sensor and the two metrics, for 100 rules, for each window
//! function at window sizes 10, 1,000 and 100,000, and for 1 and 100,000 sensors. Every figure is per reading
//! (criterion's throughput in elements).
//!
//! Run: `cargo bench -p alertstream-engine` (add `-- <filter>` to run some). docs/PERFORMANCE.md has the table.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::{
    collections::HashMap,
    hint::black_box,
    time::{Duration, SystemTime},
};

use alertstream_engine::{Reading, RuleSet, RuleSpec, StreamState};
use common::readings;

mod common;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Readings per measured batch: the clones of the batch are made outside the measurement.
const BATCH: usize = 1_000;
const LATENESS: Duration = Duration::from_secs(60);

/// A rule set of `(name, condition, message)` rules, compiled.
fn rule_set(rules: &[(&str, &str, Option<&str>)]) -> RuleSet {
    let specs = rules
        .iter()
        .map(|&(name, condition, message)| RuleSpec {
            name: name.to_owned(),
            condition: Some(condition.to_owned()),
            message: message.map(str::to_owned),
            ..RuleSpec::default()
        })
        .collect();
    RuleSet::new(specs).unwrap()
}

/// The server's embedded default rules (`rules/default.toml`).
fn classic_rules() -> RuleSet {
    rule_set(&[
        ("temp_too_low", "temperature < 10", Some("temp too low")),
        ("ph_too_high", "pH > 5.5", Some("pH too high")),
    ])
}

/// A stream that has already seen `warm` (so windows are full and sensors known), then measures batches of `next`.
fn bench_stream(c: &mut Criterion, group: &str, name: &str, rules: &RuleSet, warm: &[Reading], next: &[Reading]) {
    let mut stream = StreamState::new(usize::MAX, LATENESS);
    let mut out = Vec::new();
    for r in warm {
        rules.evaluate(&mut stream, r.clone(), r.time, &mut out);
        out.clear();
    }
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut offset = 0;
    let mut base = warm.last().map_or(0, |r| r.seq + 1);
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                // Keep time moving forward across batches, as a live stream does.
                let batch: Vec<Reading> = (0..BATCH)
                    .map(|i| {
                        let mut r = next[(offset + i) % next.len()].clone();
                        r.time = SystemTime::UNIX_EPOCH + Duration::from_secs(base + i as u64);
                        r
                    })
                    .collect();
                offset = (offset + BATCH) % next.len();
                base += BATCH as u64;
                batch
            },
            |batch| {
                for reading in batch {
                    let now = reading.time;
                    rules.evaluate(&mut stream, reading, now, &mut out);
                    out.clear();
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// The default rules beside the baseline: a loop that only looks up the sensor and the two metrics.
fn default_rules(c: &mut Criterion) {
    let rules = classic_rules();
    let data = readings(10_000, 1);
    let mut g = c.benchmark_group("default_rules");
    g.throughput(Throughput::Elements(BATCH as u64));
    let sensors: HashMap<String, usize> = HashMap::from([("line-0".to_owned(), 0)]);
    g.bench_function("baseline_lookup_only", |b| {
        b.iter_batched(
            || data[..BATCH].to_vec(),
            |batch| {
                for reading in batch {
                    black_box(sensors.get(&reading.sensor_id));
                    black_box(reading.values.get("temperature"));
                    black_box(reading.values.get("pH"));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    bench_stream(c, "default_rules", "engine", &rules, &data[..10], &data);
    // The same with an absence rule in the set: each reading also keeps the sensor's last values and its deadline.
    let mut specs: Vec<RuleSpec> = rules.rules().iter().map(|r| r.spec().clone()).collect();
    specs.push(RuleSpec { name: "silent".into(), absent_for: Some(Duration::from_secs(60)), ..RuleSpec::default() });
    let with_absence = RuleSet::new(specs).unwrap();
    bench_stream(c, "default_rules", "engine_with_absence", &with_absence, &data[..10], &data);
}

fn hundred_rules(c: &mut Criterion) {
    let rules: Vec<(String, String)> = (0..100)
        .map(|i| {
            let metric = if i % 2 == 0 { "temperature" } else { "pH" };
            (format!("r{i}"), format!("{metric} > {} and {metric} < 1e9", 100 + i))
        })
        .collect();
    let rules = rule_set(&rules.iter().map(|(n, c)| (n.as_str(), c.as_str(), None)).collect::<Vec<_>>());
    let data = readings(10_000, 1);
    bench_stream(c, "rules", "100", &rules, &data[..10], &data);
}

fn window_functions(c: &mut Criterion) {
    let functions = [
        ("avg", "avg(temperature, {n})"),
        ("min", "min(temperature, {n})"),
        ("max", "max(temperature, {n})"),
        ("sum", "sum(temperature, {n})"),
        ("count", "count(temperature, {n}s)"),
        ("stddev", "stddev(temperature, {n})"),
        ("rate", "rate(temperature, {n}s)"),
        ("zscore", "zscore(temperature, {n})"),
        ("robust_zscore", "robust_zscore(temperature, {n})"),
    ];
    for (name, call) in functions {
        for n in [10, 1_000, 100_000] {
            let condition = call.replace("{n}", &n.to_string());
            let rules = rule_set(&[("w", &format!("{condition} > 1e12"), None)]);
            // Readings one second apart: a window of n readings or n seconds holds n readings when full.
            let data = readings(n + BATCH, 1);
            bench_stream(c, &format!("window/{name}"), &n.to_string(), &rules, &data[..n], &data[n..]);
        }
    }
    for (name, condition) in [("delta", "delta(temperature) > 1e12"), ("ewma", "ewma(temperature, 0.1) > 1e12")] {
        let rules = rule_set(&[("w", condition, None)]);
        let data = readings(10 + BATCH, 1);
        bench_stream(c, &format!("window/{name}"), "any", &rules, &data[..10], &data[10..]);
    }
}

/// The anomaly detectors per reading: `likelihood` and `anomaly` at their history lengths (150, the least, to 10,000),
/// `novelty` (no length), each after a warm-up long enough to fill the history.
fn detectors(c: &mut Criterion) {
    for (name, call) in [("anomaly", "anomaly(temperature, {n})"), ("likelihood", "likelihood(temperature, {n})")] {
        for n in [150, 1_000, 10_000] {
            let condition = call.replace("{n}", &n.to_string());
            let rules = rule_set(&[("d", &format!("{condition} > 2"), None)]);
            let warm = n + 1_000;
            let data = readings(warm + 10 * BATCH, 1);
            bench_stream(c, &format!("detector/{name}"), &n.to_string(), &rules, &data[..warm], &data[warm..]);
        }
    }
    let rules = rule_set(&[("d", "novelty(temperature) > 2", None)]);
    let data = readings(1_000 + 10 * BATCH, 1);
    bench_stream(c, "detector/novelty", "any", &rules, &data[..1_000], &data[1_000..]);
}

fn sensors(c: &mut Criterion) {
    let rules = classic_rules();
    for count in [1, 100_000] {
        let data = readings(count.max(BATCH) * 2, count);
        bench_stream(c, "sensors", &count.to_string(), &rules, &data[..count.max(BATCH)], &data);
    }
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = default_rules, hundred_rules, window_functions, detectors, sensors }
criterion_main!(benches);
