//! `alertstream test FILE`: rule unit tests written in TOML (like `promtool test rules`). Each test feeds readings
//! (per sensor, at times relative to the test's start) through the engine and compares the alerts, in order, with
//! the expected ones; a failure prints a readable diff.
//!
//! ```toml
//! rules = "production-line.toml"   # relative to this file
//!
//! [[test]]
//! name = "three hot readings fire once"
//! input = [
//!   { sensor = "line-1", at = "0s", values = { temperature = 31 } },
//!   { sensor = "line-1", at = "10s", values = { temperature = 32 } },
//!   { at = "40s" },   # no reading: only the clock moves (absence rules)
//! ]
//! expect = [
//!   { sensor = "line-1", rule = "hot", state = "firing", seq = 2 },
//! ]
//! ```
//!
//! An input's time is both its reading time and the server's clock; before each input, absence rules are checked
//! at its time, as the server's timer would have. `seq` defaults to the reading's position among the test's
//! readings (1, 2, …). An expected alert checks `sensor`, `rule` and `state`, and `seq`, `message` and `severity`
//! when given.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde::Deserialize;

use alertstream_engine::{Alert, AlertState, Reading, RuleSet, Severity, StreamState, parse_duration};
use alertstream_rules::RulesError;

/// How many sensors a test stream may track (the server's default).
const MAX_SENSORS: usize = crate::config::DEFAULT_MAX_SENSORS_PER_STREAM;

/// Why a test file could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RuleTestError {
    /// The test file could not be read.
    #[error("{path}: cannot read the test file: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The test file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The path as given.
        path: String,
        /// What is wrong (TOML errors include line and column).
        message: String,
    },
    /// The test file is not valid TOML, or not a test file's shape.
    #[error("{path}:{line}:{col}: {message}")]
    Syntax {
        /// The path as given.
        path: String,
        /// The line of the offending text.
        line: usize,
        /// The column of the offending text.
        col: usize,
        /// What is wrong.
        message: String,
    },
    /// The rules file it names has errors.
    #[error("{0}")]
    Rules(#[from] RulesError),
}

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// `None` when it passed; else the diff of expected (`-`) and actual (`+`) alerts.
    pub diff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    rules: PathBuf,
    /// `--lateness` for these tests; default 60s.
    lateness: Option<String>,
    #[serde(rename = "test")]
    tests: Vec<Test>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Test {
    name: String,
    #[serde(default)]
    input: Vec<Input>,
    #[serde(default)]
    expect: Vec<Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    sensor: Option<String>,
    at: String,
    values: Option<HashMap<String, f64>>,
    seq: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    sensor: String,
    rule: String,
    state: String,
    seq: Option<u64>,
    message: Option<String>,
    severity: Option<String>,
}

/// Runs every test of the file at `path`.
///
/// # Errors
/// The test file or its rules file cannot be read or is invalid.
pub fn run(path: &Path) -> Result<Vec<TestOutcome>, RuleTestError> {
    let shown = path.display().to_string();
    let invalid = |message: String| RuleTestError::Invalid { path: shown.clone(), message };
    let text = std::fs::read_to_string(path).map_err(|source| RuleTestError::Read { path: shown.clone(), source })?;
    let file: TestFile = toml::from_str(&text).map_err(|e| {
        // As `check` reports a rules file: FILE:LINE:COL: message.
        let (line, col) = e.span().map_or((1, 1), |span| alertstream_rules::line_col(&text, span.start));
        RuleTestError::Syntax { path: shown.clone(), line, col, message: e.message().trim_end().to_owned() }
    })?;
    let rules_path = path.parent().unwrap_or(Path::new(".")).join(&file.rules);
    let rules = alertstream_rules::load(&rules_path)?.rules;
    let lateness = match &file.lateness {
        Some(text) => parse_duration(text).map_err(|e| invalid(format!("lateness: {e}")))?,
        None => crate::config::DEFAULT_LATENESS,
    };
    file.tests.iter().map(|test| run_test(&rules, lateness, test).map_err(&invalid)).collect()
}

fn run_test(rules: &RuleSet, lateness: Duration, test: &Test) -> Result<TestOutcome, String> {
    let start = SystemTime::UNIX_EPOCH;
    let mut stream = StreamState::new(MAX_SENSORS, lateness);
    let mut alerts = Vec::new();
    let mut readings = 0;
    for (i, input) in test.input.iter().enumerate() {
        let offset =
            parse_duration(&input.at).map_err(|e| format!("test `{}`, input {}: at: {e}", test.name, i + 1))?;
        let at = start
            .checked_add(offset)
            .ok_or_else(|| format!("test `{}`, input {}: `at` is too far", test.name, i + 1))?;
        rules.check_absence(&mut stream, at, &mut alerts);
        match (&input.sensor, &input.values) {
            (Some(sensor), Some(values)) => {
                readings += 1;
                let reading = Reading {
                    sensor_id: sensor.clone(),
                    values: alertstream_engine::values_from(values.iter().map(|(name, value)| (name.clone(), *value))),
                    seq: input.seq.unwrap_or(readings),
                    time: at,
                };
                rules.evaluate(&mut stream, reading, at, &mut alerts);
            }
            (None, None) => {}
            _ => {
                return Err(format!(
                    "test `{}`, input {}: a reading needs both `sensor` and `values`",
                    test.name,
                    i + 1
                ));
            }
        }
    }
    for expected in &test.expect {
        expected.state.parse::<AlertState>().map_err(|e| format!("test `{}`: {e}", test.name))?;
        if let Some(severity) = &expected.severity {
            severity.parse::<Severity>().map_err(|e| format!("test `{}`: {e}", test.name))?;
        }
    }
    let passed = test.expect.len() == alerts.len() && test.expect.iter().zip(&alerts).all(|(e, a)| matches(e, a));
    Ok(TestOutcome { name: test.name.clone(), diff: (!passed).then(|| diff(&test.expect, &alerts)) })
}

fn matches(expected: &Expected, alert: &Alert) -> bool {
    expected.sensor == *alert.sensor_id
        && expected.rule == *alert.rule
        && expected.state == alert.state.as_str()
        && expected.seq.is_none_or(|seq| seq == alert.reading_seq)
        && expected.message.as_deref().is_none_or(|m| m == &*alert.message)
        && expected.severity.as_deref().is_none_or(|s| s == alert.severity.as_str())
}

fn render_expected(e: &Expected) -> String {
    let mut line = format!("{} {} {}", e.sensor, e.rule, e.state);
    if let Some(seq) = e.seq {
        line += &format!(" seq={seq}");
    }
    if let Some(severity) = &e.severity {
        line += &format!(" severity={severity}");
    }
    if let Some(message) = &e.message {
        line += &format!(" message={message:?}");
    }
    line
}

fn render_alert(a: &Alert) -> String {
    format!(
        "{} {} {} seq={} severity={} message={:?}",
        a.sensor_id, a.rule, a.state, a.reading_seq, a.severity, &*a.message
    )
}

/// A line diff over the longest common subsequence of matching alerts: ` ` both, `-` expected only, `+` actual only.
fn diff(expected: &[Expected], actual: &[Alert]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if matches(&expected[i], &actual[j]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && matches(&expected[i], &actual[j]) {
            out += &format!("      {}\n", render_alert(&actual[j]));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("    - {}\n", render_expected(&expected[i]));
            i += 1;
        } else {
            out += &format!("    + {}\n", render_alert(&actual[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn passing_and_failing_tests_with_a_diff() {
        let dir = std::env::temp_dir().join(format!("alertstream-rule-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            "rules.toml",
            "[[rule]]\nname = \"hot\"\ncondition = \"t > 30\"\nfor = \"2 readings\"\n\n[[rule]]\nname = \"quiet\"\nabsent_for = \"30s\"\n",
        );
        let tests = write(
            &dir,
            "rules.test.toml",
            r#"
rules = "rules.toml"

[[test]]
name = "passes"
input = [
  { sensor = "a", at = "0s", values = { t = 31 } },
  { sensor = "a", at = "10s", values = { t = 32 } },
  { at = "45s" },
]
expect = [
  { sensor = "a", rule = "hot", state = "firing", seq = 2 },
  { sensor = "a", rule = "quiet", state = "firing", seq = 2, message = "quiet" },
]

[[test]]
name = "fails"
input = [
  { sensor = "a", at = "0s", values = { t = 31 } },
  { sensor = "a", at = "1s", values = { t = 31 } },
]
expect = [
  { sensor = "a", rule = "hot", state = "firing", seq = 1 },
]
"#,
        );
        let outcomes = run(&tests).unwrap();
        assert_eq!(outcomes[0], TestOutcome { name: "passes".into(), diff: None });
        assert_eq!(
            outcomes[1].diff.as_deref(),
            Some("    - a hot firing seq=1\n    + a hot firing seq=2 severity=warning message=\"hot\"\n")
        );
        let bad = write(&dir, "bad.test.toml", "rules = \"rules.toml\"\n[[test]]\nnam = \"x\"\n");
        let error = run(&bad).unwrap_err().to_string();
        // As `check` reports a rules file: FILE:LINE:COL: message, on one line.
        let shown = bad.display().to_string();
        assert!(error.starts_with(&format!("{shown}:3:1: unknown field `nam`")), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let bad = write(&dir, "syntax.test.toml", "rules = \"rules.toml\"\n[[test]]\nname = \n");
        let error = run(&bad).unwrap_err().to_string();
        assert!(error.starts_with(&format!("{}:3:8: ", bad.display())), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
