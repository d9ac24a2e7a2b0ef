//! Any sequence of readings (any ids, metric names and values, NaN and infinities included, times in any order)
//! through rules with windows, `for`, `keep_firing_for` and absence: validation refuses what it must, and nothing
//! panics or grows without bound.

#![no_main]

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use alertstream_engine::{Reading, RuleSet, StreamState, Values, validate};
use libfuzzer_sys::fuzz_target;

const RULES: &str = r#"
[[rule]]
name = "cold"
condition = "temperature < 10"
for = "2 readings"

[[rule]]
name = "swing"
condition = "abs_delta > 0 or zscore(temperature, 20) > 3 or avg(pH, 30s) > 5.5"
resolve = "temperature > 12"
keep_firing_for = "10s"

[[rule]]
name = "spread"
condition = "max(temperature, 5) - min(temperature, 5) > 4 and rate(pH, 1m) > 0.1"

[[rule]]
name = "robust"
condition = "robust_zscore(pH, 15) > 4"
notify = "every"

[[rule]]
name = "silent"
absent_for = "30s"
"#;

fn rules() -> &'static RuleSet {
    static RULES_SET: OnceLock<RuleSet> = OnceLock::new();
    RULES_SET.get_or_init(|| alertstream_rules::parse("fuzz.toml", RULES).expect("the fuzz rules are valid").rules)
}

fuzz_target!(|readings: Vec<(String, Vec<(String, f64)>, u64, u32, u16)>| {
    let rules = rules();
    let mut stream = StreamState::new(8, Duration::from_secs(60));
    let mut out = Vec::new();
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for (sensor_id, values, seq, secs, millis) in readings {
        let Some(time) =
            SystemTime::UNIX_EPOCH.checked_add(Duration::new(u64::from(secs), u32::from(millis % 1000) * 1_000_000))
        else {
            continue;
        };
        let reading = Reading { sensor_id, values: Values::from_iter(values), seq, time };
        let valid = validate(&reading).is_ok();
        let before = out.len();
        now += Duration::from_secs(7);
        rules.evaluate(&mut stream, reading, now, &mut out);
        if !valid {
            assert_eq!(out.len(), before + 1, "an invalid reading yields one event");
            assert_eq!(&*out[before].rule, "invalid_reading");
        }
        rules.check_absence(&mut stream, now, &mut out);
    }
    assert!(stream.sensor_count() <= 8);
});
