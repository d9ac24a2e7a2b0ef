//! The TOML rules file → [`RuleSet`], reporting every error of a file as `FILE:LINE:COL: message`.
//!
//! Startup and `alertstream check` go through [`load`]; the embedded defaults go through the same parser.

use std::{collections::HashMap, fmt, ops::Range, path::Path};

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use crate::{
    engine::{Hold, Notify, RuleField, RuleSet, RuleSetError, RuleSpec, Severity, Timing, line_col},
    units::parse_duration,
};

/// The embedded default rules: the two production-line thresholds of the classic example.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// The keys a `[[rule]]` table may have.
const RULE_KEYS: [&str; 10] = [
    "name",
    "condition",
    "resolve",
    "severity",
    "message",
    "notify",
    "for",
    "keep_firing_for",
    "absent_for",
    "sensors",
];

/// One problem in a rules file, at a 1-based line and column (counted in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The line of the offending text.
    pub line: usize,
    /// The column of the offending text.
    pub col: usize,
    /// What is wrong.
    pub message: String,
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
    let lines: Vec<String> =
        diagnostics.iter().map(|d| format!("{path}:{}:{}: {}", d.line, d.col, d.message)).collect();
    lines.join("\n")
}

/// Reads and compiles the rules file at `path`.
///
/// # Errors
/// The file cannot be read, or has errors (all of them, as `FILE:LINE:COL: message`).
pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read { path: shown.clone(), source })?;
    parse(&shown, &text)
}

/// The embedded default rules, compiled.
pub fn default_rules() -> RuleSet {
    parse("<default rules>", DEFAULT_RULES)
        .unwrap_or_else(|e| unreachable!("the embedded default rules are valid: {e}"))
}

/// A one-line summary of a valid rule set, as `alertstream check` prints it.
pub fn summary(path: &str, rules: &RuleSet) -> String {
    let names: Vec<&str> = rules.rules().iter().map(|r| r.name()).collect();
    let count = names.len();
    let noun = if count == 1 { "rule" } else { "rules" };
    format!("{path}: OK, {count} {noun}: {}", names.join(", "))
}

/// Compiles the rules file `text`; `path` is only used in error messages.
///
/// # Errors
/// Every error in the file, in file order.
pub fn parse(path: &str, text: &str) -> Result<RuleSet, RulesError> {
    let mut file = FileParser { text, errors: Vec::new() };
    let result = file.parse();
    let mut errors = file.errors;
    match result {
        Some(rules) if errors.is_empty() => Ok(rules),
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

/// Where each part of a rule stands in the file, to point errors at it.
struct RuleSpans {
    table: usize,
    name: usize,
    /// The string literals of `condition`, `resolve` and `message`, quotes included.
    literals: HashMap<RuleField, Range<usize>>,
    /// Where each key present starts.
    keys: HashMap<String, usize>,
}

struct FileParser<'a> {
    text: &'a str,
    /// (byte offset in the file, message).
    errors: Vec<(usize, String)>,
}

impl FileParser<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.errors.push((offset, message.into()));
    }

    fn parse(&mut self) -> Option<RuleSet> {
        let (document, syntax_errors) = DeTable::parse_recoverable(self.text);
        if !syntax_errors.is_empty() {
            for e in syntax_errors {
                let offset = e.span().map_or(0, |s| s.start);
                self.error(offset, format!("TOML syntax: {}", e.message().trim_end()));
            }
            return None;
        }
        let mut tables = Vec::new();
        for (key, value) in document.get_ref() {
            match (key.get_ref().as_ref(), value.get_ref()) {
                ("rule", DeValue::Array(items)) => {
                    for item in items {
                        match item.get_ref() {
                            DeValue::Table(table) => tables.push((item.span().start, table)),
                            _ => {
                                self.error(item.span().start, "`rule` must be a table: write each rule under [[rule]]")
                            }
                        }
                    }
                }
                ("rule", _) => {
                    self.error(value.span().start, "`rule` must be an array of tables: write each rule under [[rule]]")
                }
                (other, _) => self
                    .error(key.span().start, format!("unknown key `{other}`: a rules file holds only [[rule]] tables")),
            }
        }
        if tables.is_empty() {
            self.error(0, "no rules: a rules file needs at least one [[rule]] table");
            return None;
        }
        let mut specs = Vec::new();
        let mut spans = Vec::new();
        for (start, table) in tables {
            if let Some((spec, span)) = self.rule(start, table) {
                specs.push(spec);
                spans.push(span);
            }
        }
        if specs.is_empty() {
            return None;
        }
        match RuleSet::new(specs) {
            Ok(rules) => Some(rules),
            Err(errors) => {
                for error in errors {
                    self.rule_set_error(error, &spans);
                }
                None
            }
        }
    }

    fn rule_set_error(&mut self, error: RuleSetError, spans: &[RuleSpans]) {
        let message = error.to_string();
        match error {
            RuleSetError::Empty => self.error(0, message),
            RuleSetError::DuplicateName { rule, .. }
            | RuleSetError::ReservedName { rule, .. }
            | RuleSetError::EmptyName { rule } => self.error(spans[rule].name, message),
            RuleSetError::MissingCondition { rule } => self.error(spans[rule].table, message),
            RuleSetError::AbsentWith { rule, key } => {
                self.error(spans[rule].keys.get(key).copied().unwrap_or(spans[rule].table), message)
            }
            RuleSetError::Field { rule, field, error } => {
                let Some(literal) = spans[rule].literals.get(&field).cloned() else {
                    return self.error(spans[rule].table, message);
                };
                let offset = file_offset(&self.text[literal.clone()], error.span.start)
                    .map_or(literal.start, |o| literal.start + o);
                let label = match field {
                    RuleField::Condition => "in condition: ",
                    RuleField::Resolve => "in resolve: ",
                    RuleField::Message => "",
                };
                self.error(offset, format!("{label}{message}"));
            }
        }
    }

    /// Reads one `[[rule]]` table; `None` when its name is missing (errors recorded). A rule with other errors is
    /// still compiled, so the errors of its conditions are reported too; the file fails either way.
    fn rule(&mut self, table_start: usize, table: &DeTable<'_>) -> Option<(RuleSpec, RuleSpans)> {
        let mut keys = HashMap::new();
        for (key, _) in table {
            let key_name: &str = key.get_ref();
            keys.insert(key_name.to_owned(), key.span().start);
            if !RULE_KEYS.contains(&key_name) {
                self.error(
                    key.span().start,
                    format!("unknown key `{key_name}` in rule; expected one of: {}", RULE_KEYS.join(", ")),
                );
            }
        }
        let name = self.string(table, "name", table_start, true);
        let condition = self.string(table, "condition", table_start, false);
        let resolve = self.string(table, "resolve", table_start, false);
        let message = self.string(table, "message", table_start, false);
        let severity = self.parsed(table, "severity", |s| {
            parse_severity(s).ok_or_else(|| format!("unknown severity `{s}`: use info, warning or critical"))
        });
        let notify = self.parsed(table, "notify", |s| {
            parse_notify(s).ok_or_else(|| format!("unknown notify `{s}`: use change or every"))
        });
        let hold = self.parsed(table, "for", |s| parse_hold(s).map_err(|e| format!("bad `for`: {e}")));
        let keep_firing_for =
            self.parsed(table, "keep_firing_for", |s| parse_hold(s).map_err(|e| format!("bad `keep_firing_for`: {e}")));
        let absent_for =
            self.parsed(table, "absent_for", |s| parse_duration(s).map_err(|e| format!("bad `absent_for`: {e}")));
        let sensors = self.sensors(table);
        let name = name?;
        let mut literals = HashMap::new();
        for (field, value) in
            [(RuleField::Condition, &condition), (RuleField::Resolve, &resolve), (RuleField::Message, &message)]
        {
            if let Some(value) = value {
                literals.insert(field, value.span());
            }
        }
        let spans = RuleSpans { table: table_start, name: name.span().start, literals, keys };
        let spec = RuleSpec {
            name: name.into_inner(),
            condition: condition.map(Spanned::into_inner),
            resolve: resolve.map(Spanned::into_inner),
            severity: severity.unwrap_or_default(),
            message: message.map(Spanned::into_inner),
            timing: Timing { notify: notify.unwrap_or_default(), hold, keep_firing_for },
            absent_for,
            sensors,
        };
        Some((spec, spans))
    }

    /// The value of an optional string key, parsed; a bad value is recorded at the value and read as absent.
    fn parsed<T>(&mut self, table: &DeTable<'_>, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let value = self.string(table, key, 0, false)?;
        match parse(value.get_ref()) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.error(value.span().start, message);
                None
            }
        }
    }

    /// `sensors`: an array of id patterns.
    fn sensors(&mut self, table: &DeTable<'_>) -> Vec<String> {
        let Some(value) = table.get("sensors") else { return Vec::new() };
        let DeValue::Array(items) = value.get_ref() else {
            self.error(value.span().start, "`sensors` must be an array of id patterns, as [\"line-1/*\"]");
            return Vec::new();
        };
        let mut patterns = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(pattern) if !pattern.is_empty() => patterns.push(pattern.to_string()),
                _ => self.error(item.span().start, "each entry of `sensors` must be a non-empty string"),
            }
        }
        patterns
    }

    /// The string value of `key`, recording an error when it is missing but required, or not a string.
    fn string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        table_start: usize,
        required: bool,
    ) -> Option<Spanned<String>> {
        let Some(value) = table.get(key) else {
            if required {
                self.error(table_start, format!("rule is missing the required key `{key}`"));
            }
            return None;
        };
        match value.get_ref() {
            DeValue::String(s) => Some(Spanned::new(value.span(), s.to_string())),
            other => {
                self.error(value.span().start, format!("`{key}` must be a string, found {}", other.type_str()));
                None
            }
        }
    }
}

fn parse_severity(text: &str) -> Option<Severity> {
    Some(match text {
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

fn parse_notify(text: &str) -> Option<Notify> {
    Some(match text {
        "change" => Notify::Change,
        "every" => Notify::Every,
        _ => return None,
    })
}

/// Parses `for`: a duration (`30s`) or a count of readings (`5 readings`, `1 reading`).
fn parse_hold(text: &str) -> Result<Hold, String> {
    let trimmed = text.trim();
    if let Some(count) = trimmed.strip_suffix("readings").or_else(|| trimmed.strip_suffix("reading")) {
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a count: write a whole number, as in \"5 readings\""))?;
        if count == 0 {
            return Err("a count must be at least 1 reading".to_owned());
        }
        return Ok(Hold::Readings(count));
    }
    parse_duration(trimmed).map(Hold::Duration).map_err(|e| format!("{e}; or a count, as in \"5 readings\""))
}

/// Formats a hold as the rules file writes it.
pub fn format_hold(hold: Hold) -> String {
    match hold {
        Hold::Readings(1) => "1 reading".to_owned(),
        Hold::Readings(n) => format!("{n} readings"),
        Hold::Duration(d) => crate::units::format_duration(d),
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Maps byte `offset` of a TOML string's decoded value to a byte offset in its `literal` (quotes included).
///
/// Returns `None` when the literal cannot be followed exactly (an escape this walker does not know), so the caller
/// falls back to the start of the literal.
fn file_offset(literal: &str, offset: usize) -> Option<usize> {
    let (quote, multiline) = if literal.starts_with("\"\"\"") {
        ('"', true)
    } else if literal.starts_with("'''") {
        ('\'', true)
    } else {
        (literal.chars().next()?, false)
    };
    let delimiter = if multiline { 3 } else { 1 };
    let mut pos = delimiter;
    let body_end = literal.len().checked_sub(delimiter)?;
    if multiline {
        if literal[pos..].starts_with("\r\n") {
            pos += 2;
        } else if literal[pos..].starts_with('\n') {
            pos += 1;
        }
    }
    let mut decoded = 0;
    while pos < body_end {
        if decoded >= offset {
            return Some(pos);
        }
        let rest = &literal[pos..];
        let c = rest.chars().next()?;
        if quote == '"' && c == '\\' {
            let next = rest[1..].chars().next()?;
            if multiline && next.is_whitespace() {
                // A line-ending backslash drops all whitespace and newlines up to the next other character.
                pos += 1 + rest[1..].find(|c: char| !c.is_whitespace()).unwrap_or(rest.len() - 1);
                continue;
            }
            let (raw_len, value) = match next {
                'u' => (6, char::from_u32(u32::from_str_radix(rest.get(2..6)?, 16).ok()?)?),
                'U' => (10, char::from_u32(u32::from_str_radix(rest.get(2..10)?, 16).ok()?)?),
                'x' => (4, char::from_u32(u32::from_str_radix(rest.get(2..4)?, 16).ok()?)?),
                'b' | 't' | 'n' | 'f' | 'r' | '"' | '\\' | 'e' => (2, ' '),
                _ => return None,
            };
            decoded += value.len_utf8();
            pos += raw_len;
        } else {
            decoded += c.len_utf8();
            pos += c.len_utf8();
        }
    }
    (decoded >= offset).then_some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse("r.toml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn the_default_rules_are_the_classic_thresholds() {
        let rules = default_rules();
        let shown: Vec<(&str, Option<&str>, Option<&str>, Severity)> = rules
            .rules()
            .iter()
            .map(|r| {
                let spec = r.spec();
                (r.name(), spec.condition.as_deref(), spec.message.as_deref(), spec.severity)
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("temp_too_low", Some("temperature < 10"), Some("temp too low"), Severity::Warning),
                ("ph_too_high", Some("pH > 5.5"), Some("pH too high"), Severity::Warning),
            ]
        );
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
absent_for = "10s"
"#,
        )
        .unwrap();
        let specs: Vec<&RuleSpec> = rules.rules().iter().map(|r| r.spec()).collect();
        assert_eq!(
            *specs[0],
            RuleSpec {
                name: "hot".into(),
                condition: Some("t > 30".into()),
                resolve: Some("t < 28".into()),
                severity: Severity::Critical,
                message: Some("too hot: {t} on {sensor_id}".into()),
                timing: Timing {
                    notify: Notify::Every,
                    hold: Some(Hold::Duration(std::time::Duration::from_secs(30))),
                    keep_firing_for: Some(Hold::Readings(2)),
                },
                absent_for: None,
                sensors: vec!["line-1/*".into(), "oven".into()],
            }
        );
        assert_eq!((specs[1].severity, specs[1].message.as_deref()), (Severity::Warning, None));
        assert_eq!(specs[1].timing.hold, Some(Hold::Readings(5)));
        assert_eq!(format_hold(Hold::Readings(5)), "5 readings");
        assert_eq!(specs[2].absent_for, Some(std::time::Duration::from_secs(10)));
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

    #[test]
    fn file_offsets_follow_escapes() {
        assert_eq!(file_offset("\"abc\"", 1), Some(2));
        assert_eq!(file_offset("\"\\tbc\"", 1), Some(3));
        assert_eq!(file_offset("'a\\b'", 2), Some(3));
        assert_eq!(file_offset("\"\"\"\nab\"\"\"", 1), Some(5));
        assert_eq!(file_offset("\"a\\qb\"", 2), None);
    }

    #[test]
    fn hold_forms() {
        assert_eq!(parse_hold("1 reading"), Ok(Hold::Readings(1)));
        assert_eq!(parse_hold("3readings"), Ok(Hold::Readings(3)));
        assert_eq!(parse_hold("500ms"), Ok(Hold::Duration(std::time::Duration::from_millis(500))));
        assert!(parse_hold("0 readings").is_err());
        assert!(parse_hold("soon").unwrap_err().contains("or a count"));
    }
}
