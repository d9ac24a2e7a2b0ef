//! The walk over a rules file's TOML: each `[[rule]]` table into a [`RuleSpec`], with the file position of every
//! part kept so that an error, the engine's included, points at the text it is about. Errors are collected as
//! byte offsets; `diagnostic.rs` turns them into lines and columns.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Range,
};

use alertstream_engine::{
    DurationsAsWritten, Hold, Notify, RuleField, RuleSet, RuleSetError, RuleSpec, Severity, Timing, parse_duration,
};
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use crate::{RulesFile, diagnostic::file_offset};

/// The keys a `[[rule]]` table may have.
const RULE_KEYS: [&str; 13] = [
    "name",
    "condition",
    "resolve",
    "severity",
    "message",
    "resolve_message",
    "labels",
    "notify",
    "for",
    "keep_firing_for",
    "absent_for",
    "sensors",
    "sinks",
];

/// Where each part of a rule stands in the file, to point errors at it.
struct RuleSpans {
    table: usize,
    name: usize,
    /// The string literals of `condition`, `resolve`, `message` and `resolve_message`, quotes included.
    literals: HashMap<RuleField, Range<usize>>,
    /// Where each key present starts.
    keys: HashMap<String, usize>,
    /// Where each label's name starts.
    labels: HashMap<String, usize>,
    /// Each entry of `sinks`: where it starts.
    sinks: Vec<usize>,
}

pub(crate) struct FileParser<'a> {
    text: &'a str,
    /// (byte offset in the file, message).
    pub(crate) errors: Vec<(usize, String)>,
}

impl<'a> FileParser<'a> {
    pub(crate) fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.errors.push((offset, message.into()));
    }

    /// A walker over the rules file `text`, with no errors yet.
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, errors: Vec::new() }
    }

    /// Reads every rule and sink and compiles the rule set; `None` when anything is wrong, every error in `errors`.
    pub(crate) fn parse(&mut self) -> Option<RulesFile> {
        let (document, syntax_errors) = DeTable::parse_recoverable(self.text);
        if !syntax_errors.is_empty() {
            for e in syntax_errors {
                let offset = e.span().map_or(0, |s| s.start);
                self.error(offset, format!("TOML syntax: {}", e.message().trim_end()));
            }
            return None;
        }
        let (mut tables, mut sink_tables) = (Vec::new(), Vec::new());
        for (key, value) in document.get_ref() {
            let into = match key.get_ref().as_ref() {
                "rule" => &mut tables,
                "sink" => &mut sink_tables,
                other => {
                    let message =
                        format!("unknown key `{other}`: a rules file holds only [[rule]] and [[sink]] tables");
                    self.error(key.span().start, message);
                    continue;
                }
            };
            let what = key.get_ref().to_string();
            match value.get_ref() {
                DeValue::Array(items) => {
                    for item in items {
                        match item.get_ref() {
                            DeValue::Table(table) => into.push((item.span().start, table)),
                            _ => self.error(
                                item.span().start,
                                format!("`{what}` must be a table: write each {what} under [[{what}]]"),
                            ),
                        }
                    }
                }
                _ => self.error(
                    value.span().start,
                    format!("`{what}` must be an array of tables: write each {what} under [[{what}]]"),
                ),
            }
        }
        let sinks = self.sinks(&sink_tables);
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
        self.check_rule_sinks(&specs, &spans, &sink_tables);
        match RuleSet::new(specs) {
            Ok(rules) => Some(RulesFile { rules, sinks }),
            Err(errors) => {
                for error in errors {
                    self.rule_set_error(error, &spans);
                }
                None
            }
        }
    }

    /// Every sink a rule names is one of the file's (a sink table with errors counts, so it is not reported twice).
    fn check_rule_sinks(&mut self, specs: &[RuleSpec], spans: &[RuleSpans], sink_tables: &[(usize, &DeTable<'_>)]) {
        let mut known: Vec<String> = Vec::new();
        for (_, table) in sink_tables {
            if let Some(DeValue::String(name)) = table.get("name").map(|n| n.get_ref())
                && !known.iter().any(|k| k == name.as_ref())
            {
                known.push(name.to_string());
            }
        }
        for (spec, span) in specs.iter().zip(spans) {
            for (name, at) in spec.sinks.iter().zip(&span.sinks) {
                if !known.contains(name) {
                    let listed = if known.is_empty() {
                        "the file has none".to_owned()
                    } else {
                        format!("the file's sinks are {}", known.join(", "))
                    };
                    self.error(*at, format!("unknown sink `{name}`: {listed}"));
                }
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
            RuleSetError::Label { rule, ref name, .. } => {
                let offset = spans[rule].labels.get(name).copied().unwrap_or(spans[rule].table);
                self.error(offset, message)
            }
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
                    RuleField::ResolveMessage => "in resolve_message: ",
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
        let name = self.string(table, "name", table_start, Some("rule"));
        let condition = self.string(table, "condition", table_start, None);
        let resolve = self.string(table, "resolve", table_start, None);
        let message = self.string(table, "message", table_start, None);
        let resolve_message = self.string(table, "resolve_message", table_start, None);
        let severity = self.parsed(table, "severity", |s| s.parse::<Severity>().map_err(|e| e.to_string()));
        let notify = self.parsed(table, "notify", |s| s.parse::<Notify>().map_err(|e| e.to_string()));
        let hold = self.parsed(table, "for", |s| s.parse::<Hold>().map_err(|e| format!("bad `for`: {e}")));
        let keep_firing_for = self
            .parsed(table, "keep_firing_for", |s| s.parse::<Hold>().map_err(|e| format!("bad `keep_firing_for`: {e}")));
        let absent_for =
            self.parsed(table, "absent_for", |s| parse_duration(s).map_err(|e| format!("bad `absent_for`: {e}")));
        let sensors = self.string_list(table, "sensors", "id patterns, as [\"line-1/*\"]").0;
        let (sinks, sink_spans) = self.string_list(table, "sinks", "sink names, as [\"pager\"]");
        let (labels, label_spans) = self.labels(table);
        let as_written = DurationsAsWritten {
            hold: hold.as_ref().and(self.raw_string(table, "for")),
            keep_firing_for: keep_firing_for.as_ref().and(self.raw_string(table, "keep_firing_for")),
            absent_for: absent_for.as_ref().and(self.raw_string(table, "absent_for")),
        };
        let name = name?;
        let mut literals = HashMap::new();
        for (field, value) in [
            (RuleField::Condition, &condition),
            (RuleField::Resolve, &resolve),
            (RuleField::Message, &message),
            (RuleField::ResolveMessage, &resolve_message),
        ] {
            if let Some(value) = value {
                literals.insert(field, value.span());
            }
        }
        let spans = RuleSpans {
            table: table_start,
            name: name.span().start,
            literals,
            keys,
            labels: label_spans,
            sinks: sink_spans,
        };
        let spec = RuleSpec {
            name: name.into_inner(),
            condition: condition.map(Spanned::into_inner),
            resolve: resolve.map(Spanned::into_inner),
            severity: severity.unwrap_or_default(),
            message: message.map(Spanned::into_inner),
            resolve_message: resolve_message.map(Spanned::into_inner),
            labels,
            timing: Timing { notify: notify.unwrap_or_default(), hold, keep_firing_for },
            absent_for,
            sensors,
            sinks,
            as_written,
        };
        Some((spec, spans))
    }

    /// The value of an optional string key, parsed; a bad value is recorded at the value and read as absent.
    pub(crate) fn parsed<T>(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.string(table, key, 0, None)?;
        match parse(value.get_ref()) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.error(value.span().start, message);
                None
            }
        }
    }

    /// The text of string key `key`, as written; `None` when missing or not a string (reported elsewhere).
    fn raw_string(&self, table: &DeTable<'_>, key: &str) -> Option<String> {
        match table.get(key)?.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        }
    }

    /// `labels`: a table of strings, and where each name starts. The engine checks the names.
    fn labels(&mut self, table: &DeTable<'_>) -> (BTreeMap<String, String>, HashMap<String, usize>) {
        let (mut labels, mut spans) = (BTreeMap::new(), HashMap::new());
        let Some(value) = table.get("labels") else { return (labels, spans) };
        let DeValue::Table(entries) = value.get_ref() else {
            self.error(value.span().start, "`labels` must be a table of strings, as { team = \"ovens\" }");
            return (labels, spans);
        };
        for (name, value) in entries {
            let name_text: &str = name.get_ref();
            match value.get_ref() {
                DeValue::String(text) => {
                    labels.insert(name_text.to_owned(), text.to_string());
                    spans.insert(name_text.to_owned(), name.span().start);
                }
                other => self.error(
                    value.span().start,
                    format!("label `{name_text}` must be a string, found {}", other.type_str()),
                ),
            }
        }
        (labels, spans)
    }

    /// An array of non-empty strings (`sensors`, `sinks`), and where each starts; `what` says what it holds.
    fn string_list(&mut self, table: &DeTable<'_>, key: &str, what: &str) -> (Vec<String>, Vec<usize>) {
        let (mut strings, mut starts) = (Vec::new(), Vec::new());
        let Some(value) = table.get(key) else { return (strings, starts) };
        let DeValue::Array(items) = value.get_ref() else {
            self.error(value.span().start, format!("`{key}` must be an array of {what}"));
            return (strings, starts);
        };
        for item in items {
            match item.get_ref() {
                DeValue::String(text) if !text.is_empty() => {
                    strings.push(text.to_string());
                    starts.push(item.span().start);
                }
                _ => self.error(item.span().start, format!("each entry of `{key}` must be a non-empty string")),
            }
        }
        (strings, starts)
    }

    /// The string value of `key`, recording an error when it is missing but required, or not a string.
    /// `required` names the table (`rule`, `sink`) when the key must be there.
    pub(crate) fn string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        table_start: usize,
        required: Option<&str>,
    ) -> Option<Spanned<String>> {
        let Some(value) = table.get(key) else {
            if let Some(what) = required {
                self.error(table_start, format!("{what} is missing the required key `{key}`"));
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
