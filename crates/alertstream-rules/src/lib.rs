//! alertstream's rules file: TOML → a compiled [`RuleSet`] and the [`SinkSpec`]s alerts also go to, every error of
//! a file reported as `FILE:LINE:COL: message`, all of them, not only the first.
//!
//! Its own crate, beside the engine, so that `alertstream check`, the server's startup and reload, and a fuzz
//! target all reach the same loader without building the server. `file.rs` walks the TOML (`sink.rs` its
//! `[[sink]]` tables); `diagnostic.rs` turns
//! byte offsets (a condition's own, mapped through TOML string escapes) into lines and columns.

#![warn(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod diagnostic;
mod file;
mod sink;

use std::path::Path;

use alertstream_engine::RuleSet;

pub use diagnostic::{Diagnostic, line_col};
pub use sink::{
    DEFAULT_MAX_FILE_AGE, DEFAULT_MAX_FILE_BYTES, DEFAULT_QUEUE, DEFAULT_RESEND_INTERVAL, DEFAULT_SUBJECT, Secret,
    SinkKind, SinkSpec,
};

/// What a valid rules file holds: its rules, compiled, and its sinks.
#[derive(Debug, Clone)]
pub struct RulesFile {
    /// The rules, compiled.
    pub rules: RuleSet,
    /// Where alerts go besides their stream, in file order.
    pub sinks: Vec<SinkSpec>,
}

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("{path}: cannot read the rules file: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read and has one or more errors, all of them listed.
    #[error("{}", render(path, diagnostics))]
    Invalid {
        /// The path as given.
        path: String,
        /// Every error found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(path: &str, diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(|d| format!("{path}:{d}")).collect();
    lines.join("\n")
}

/// Reads and compiles the rules file at `path`.
///
/// # Errors
/// The file cannot be read, or has errors (all of them, as `FILE:LINE:COL: message`).
pub fn load(path: &Path) -> Result<RulesFile, RulesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read { path: shown.clone(), source })?;
    parse(&shown, &text)
}

/// Compiles the rules file `text`; `path` is only used in error messages.
///
/// # Errors
/// Every error in the file, in file order.
pub fn parse(path: &str, text: &str) -> Result<RulesFile, RulesError> {
    let mut file = file::FileParser::new(text);
    let result = file.parse();
    let mut errors = file.errors;
    match result {
        Some(file) if errors.is_empty() => Ok(file),
        _ => {
            errors.sort_by_key(|(offset, _)| *offset);
            let diagnostics = errors
                .into_iter()
                .map(|(offset, message)| {
                    let (line, col) = line_col(text, offset);
                    Diagnostic { line, col, message }
                })
                .collect();
            Err(RulesError::Invalid { path: path.to_owned(), diagnostics })
        }
    }
}

/// A one-line summary of a valid rules file, as `alertstream check` prints it.
pub fn summary(path: &str, file: &RulesFile) -> String {
    let listed = |names: Vec<&str>, one: &str, many: &str| {
        let noun = if names.len() == 1 { one } else { many };
        format!("{} {noun}: {}", names.len(), names.join(", "))
    };
    let rules = listed(file.rules.rules().iter().map(|r| r.name()).collect(), "rule", "rules");
    if file.sinks.is_empty() {
        return format!("{path}: OK, {rules}");
    }
    let sinks = listed(file.sinks.iter().map(|s| s.name.as_str()).collect(), "sink", "sinks");
    format!("{path}: OK, {rules}; {sinks}")
}

#[cfg(test)]
mod tests {
    use alertstream_engine::{DurationsAsWritten, Hold, Notify, RuleSpec, Severity, Timing};

    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse("r.toml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn every_key_is_read() {
        let rules = parse(
            "r.toml",
            r#"
[[rule]]
name = "hot"
condition = "t > 30"
resolve = "t < 28"
severity = "critical"
message = "too hot: {t} on {sensor_id}"
resolve_message = "cooled to {t}"
labels = { team = "ovens", room = "B2" }
notify = "every"
for = "30s"
keep_firing_for = "2 readings"
sensors = ["line-1/*", "oven"]

[[rule]]
name = "cold"
condition = 't < 0'
for = "5 readings"

[[rule]]
name = "silent"
absent_for = "1m30s"
"#,
        )
        .unwrap();
        let specs: Vec<&RuleSpec> = rules.rules.rules().iter().map(|r| r.spec()).collect();
        assert_eq!(
            *specs[0],
            RuleSpec {
                name: "hot".into(),
                condition: Some("t > 30".into()),
                resolve: Some("t < 28".into()),
                severity: Severity::Critical,
                message: Some("too hot: {t} on {sensor_id}".into()),
                resolve_message: Some("cooled to {t}".into()),
                labels: [("room".to_owned(), "B2".to_owned()), ("team".to_owned(), "ovens".to_owned())].into(),
                timing: Timing {
                    notify: Notify::Every,
                    hold: Some(Hold::Duration(std::time::Duration::from_secs(30))),
                    keep_firing_for: Some(Hold::Readings(2)),
                },
                absent_for: None,
                sensors: vec!["line-1/*".into(), "oven".into()],
                sinks: Vec::new(),
                as_written: DurationsAsWritten {
                    hold: Some("30s".into()),
                    keep_firing_for: Some("2 readings".into()),
                    absent_for: None,
                },
            }
        );
        assert_eq!((specs[1].severity, specs[1].message.as_deref()), (Severity::Warning, None));
        assert_eq!(specs[1].timing.hold, Some(Hold::Readings(5)));
        assert_eq!(specs[2].absent_for, Some(std::time::Duration::from_secs(90)));
        assert_eq!(specs[2].as_written.absent_for.as_deref(), Some("1m30s"));
    }

    #[test]
    fn label_and_resolve_message_errors_point_into_the_file() {
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"t > 1\"\nlabels = { team = \"x\", severity = \"high\" }\n"),
            ["r.toml:4:24: bad label name `severity`: every alert carries it already"]
        );
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"t > 1\"\nlabels = { \"a-b\" = \"x\", n = 3 }\n"),
            [
                "r.toml:4:12: bad label name `a-b`: a label name is a letter or `_`, then letters, digits and `_`",
                "r.toml:4:29: label `n` must be a string, found integer",
            ]
        );
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"t > 1\"\nlabels = [\"x\"]\n"),
            ["r.toml:4:10: `labels` must be a table of strings, as { team = \"ovens\" }"]
        );
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"t > 1\"\nresolve_message = \"ok {\"\n"),
            ["r.toml:4:23: in resolve_message: unclosed `{` in message: write `{{` for a literal brace"]
        );
    }

    #[test]
    fn condition_errors_point_into_the_file() {
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"t >\"\n"),
            ["r.toml:3:17: in condition: expected a number, a metric or `(`, found end of condition"]
        );
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"a < b < c\"\n"),
            ["r.toml:3:20: in condition: comparisons cannot be chained: `<` follows `<`; join them with `and`"]
        );
        // An escape before the error shifts the file column by its raw length.
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"\\u0074 = 1\"\n"),
            ["r.toml:3:21: in condition: `=` is not an operator; compare with `==`"]
        );
        // A multi-line string: the error's line and column are the file's.
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = \"\"\"\ntemperature > 1 and\n  pH >> 2\"\"\"\n"),
            ["r.toml:5:7: in condition: expected a number, a metric or `(`, found `>`"]
        );
        assert_eq!(
            errors("[[rule]]\nname = \"a\"\ncondition = '''t > 1 +'''\n"),
            ["r.toml:3:23: in condition: expected a number, a metric or `(`, found end of condition"]
        );
    }
}
