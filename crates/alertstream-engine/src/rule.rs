//! Rules: a [`RuleSpec`] as written, compiled into a [`Rule`] (its conditions, message template, window functions
//! and sensor patterns).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::{
    alert::{AlertState, Severity},
    compile::{Condition, MetricTable, compile},
    condition_error::ConditionError,
    glob::SensorPattern,
    reading::Values,
    rule_set::RuleSetError,
    state::Timing,
    template::Template,
    text::format_duration,
    window::WindowFn,
};

/// A rule as written, before it is compiled. Hot reload keeps the state of a rule whose name and
/// [identity](RuleSpec::same_identity) did not change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSpec {
    /// Unique within a rule set; alerts carry it.
    pub name: String,
    /// When the rule fires; required unless `absent_for` is given.
    pub condition: Option<String>,
    /// When a firing rule resolves; without it, when `condition` stops holding.
    pub resolve: Option<String>,
    /// Carried by every alert of the rule.
    pub severity: Severity,
    /// Carried by every FIRING alert of the rule, with `{placeholders}` filled; the name when `None`.
    pub message: Option<String>,
    /// Carried by every RESOLVED alert of the rule, with `{placeholders}` filled; when `None`, `resolved: ` and the
    /// message ([`DEFAULT_RESOLVE_PREFIX`]).
    pub resolve_message: Option<String>,
    /// Names and values that describe the rule to the people and systems alerts reach (`team = "utilities"`).
    /// Names match `[A-Za-z_][A-Za-z0-9_]*`; `alertname`, `sensor_id` and `severity` are reserved.
    pub labels: BTreeMap<String, String>,
    /// `notify`, `for` and `keep_firing_for`.
    pub timing: Timing,
    /// Fires for a sensor that reported and then has been silent this long (server time); takes no condition.
    pub absent_for: Option<Duration>,
    /// Sensor id patterns the rule applies to (`line-1/*`); empty: every sensor.
    pub sensors: Vec<String>,
    /// The sinks the rule's alerts go to, by name; empty: every sink. No part of its identity.
    pub sinks: Vec<String>,
    /// The durations as the rules file wrote them, for `ListRules`; empty for a spec built in code.
    pub as_written: DurationsAsWritten,
}

/// The text a rules file wrote `for`, `keep_firing_for` and `absent_for` in (`"90s"`, `"1h30m"`), kept so that
/// `ListRules` shows each as written. It is no part of a rule's identity: `"90s"` and `"1m30s"` are one hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DurationsAsWritten {
    /// `for`.
    pub hold: Option<String>,
    /// `keep_firing_for`.
    pub keep_firing_for: Option<String>,
    /// `absent_for`.
    pub absent_for: Option<String>,
}

/// What a RESOLVED alert's message is when the rule has no `resolve_message`: this, then the rule's message.
pub const DEFAULT_RESOLVE_PREFIX: &str = "resolved: ";

/// Label names a rule may not use: alerts already carry these.
pub const RESERVED_LABELS: [&str; 3] = ["alertname", "sensor_id", "severity"];

impl RuleSpec {
    /// Whether `other` watches the same thing the same way: the same `condition`, `resolve`, `for`,
    /// `keep_firing_for`, `notify`, `absent_for` and `sensors`. Hot reload keeps the state of a rule of the same
    /// name and identity; its name, severity, messages and labels may change without a RESOLVED and a new FIRING.
    pub fn same_identity(&self, other: &RuleSpec) -> bool {
        self.condition == other.condition
            && self.resolve == other.resolve
            && self.timing == other.timing
            && self.absent_for == other.absent_for
            && self.sensors == other.sensors
    }

    /// Its identity as text: two specs have the same key exactly when they have the [same
    /// identity](Self::same_identity). Snapshots keep it, so that a saved rule state goes back only to the same rule.
    pub fn identity_key(&self) -> String {
        let hold = |hold: Option<crate::Hold>| match hold {
            None => String::new(),
            Some(crate::Hold::Readings(n)) => format!("{n} readings"),
            Some(crate::Hold::Duration(d)) => format!("{}ns", d.as_nanos()),
        };
        format!(
            "{:?}\u{1f}{:?}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}",
            self.condition,
            self.resolve,
            self.timing.notify,
            hold(self.timing.hold),
            hold(self.timing.keep_firing_for),
            self.absent_for.map(|d| d.as_nanos()),
            self.sensors
        )
    }
}

/// Which field of a rule an error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleField {
    /// The `condition`.
    Condition,
    /// The `resolve` condition.
    Resolve,
    /// The `message`.
    Message,
    /// The `resolve_message`.
    ResolveMessage,
}

/// What a rule watches.
// One per rule, built once: boxing the large variant would only add an indirection on the per-reading path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Watch {
    /// A condition on each reading, and optionally the condition that resolves it.
    Condition { condition: Condition, resolve: Option<Condition> },
    /// Silence of a sensor for this long.
    Absence(Duration),
}

/// What every alert of a rule carries unchanged: its name, and its messages unless they are templates.
#[derive(Debug, Clone)]
pub(crate) struct RuleText {
    pub(crate) name: Arc<str>,
    pub(crate) message: Option<Arc<str>>,
    pub(crate) resolve_message: Option<Arc<str>>,
    /// The left side of each comparison, as explanations name it: the condition's, then the resolve condition's.
    pub(crate) terms: Vec<Arc<str>>,
}

/// A rule's message: fixed, or a template filled per alert.
#[derive(Debug, Clone)]
pub(crate) enum Message {
    Plain(Arc<str>),
    Template(Template),
}

impl Message {
    /// Parses a message: plain when it has no placeholders.
    fn parse(text: &str) -> Result<Self, crate::template::TemplateError> {
        let template = Template::parse(text)?;
        Ok(match template.as_plain() {
            Some(plain) => Message::Plain(Arc::from(plain)),
            None => Message::Template(template),
        })
    }

    fn plain(&self) -> Option<&Arc<str>> {
        match self {
            Message::Plain(message) => Some(message),
            Message::Template(_) => None,
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    pub(crate) name: Arc<str>,
    pub(crate) message: Message,
    pub(crate) resolve_message: Message,
    pub(crate) watch: Watch,
    /// The window functions its conditions call; each sensor gets a state per entry.
    pub(crate) windows: Vec<WindowFn>,
    sensors: Vec<SensorPattern>,
}

impl Rule {
    /// The rule as written.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    /// The rule's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The FIRING message as written, placeholders included: the rule's name when it has none.
    pub fn message_as_written(&self) -> String {
        self.spec.message.clone().unwrap_or_else(|| self.spec.name.clone())
    }

    /// The RESOLVED message as written, placeholders included: [`DEFAULT_RESOLVE_PREFIX`] and the message when the
    /// rule has none.
    pub fn resolve_message_as_written(&self) -> String {
        (self.spec.resolve_message.clone())
            .unwrap_or_else(|| format!("{DEFAULT_RESOLVE_PREFIX}{}", self.message_as_written()))
    }

    /// `for` as the rules file wrote it (in its one written form for a spec built in code); empty when none.
    pub fn hold_as_written(&self) -> String {
        as_written(&self.spec.as_written.hold, self.spec.timing.hold.map(|h| h.to_string()))
    }

    /// `keep_firing_for` as the rules file wrote it; empty when none.
    pub fn keep_firing_for_as_written(&self) -> String {
        as_written(&self.spec.as_written.keep_firing_for, self.spec.timing.keep_firing_for.map(|h| h.to_string()))
    }

    /// `absent_for` as the rules file wrote it; empty when none.
    pub fn absent_for_as_written(&self) -> String {
        as_written(&self.spec.as_written.absent_for, self.spec.absent_for.map(format_duration))
    }

    /// The rule's name, plain messages and comparisons' left sides, shared with every stream.
    pub(crate) fn text(&self) -> RuleText {
        RuleText {
            name: Arc::clone(&self.name),
            message: self.message.plain().map(Arc::clone),
            resolve_message: self.resolve_message.plain().map(Arc::clone),
            terms: self.term_expressions().map(Arc::clone).collect(),
        }
    }

    /// The left side of each comparison of the condition, then of the resolve condition.
    fn term_expressions(&self) -> impl Iterator<Item = &Arc<str>> {
        let conditions = match &self.watch {
            Watch::Condition { condition, resolve } => [Some(condition), resolve.as_ref()],
            Watch::Absence(_) => [None, None],
        };
        conditions.into_iter().flatten().flat_map(|c| c.terms.iter().map(|t| &t.expression))
    }

    /// Copies of the rule's name, plain messages and comparisons' left sides for one stream's own use: counting
    /// references to them never touches memory that streams on other cores count too (a count shared by every
    /// stream bounces between cores on every alert).
    pub(crate) fn own_text(&self) -> RuleText {
        let own = |message: &Message| message.plain().map(|m| Arc::from(&**m));
        RuleText {
            name: Arc::from(&*self.name),
            message: own(&self.message),
            resolve_message: own(&self.resolve_message),
            terms: self.term_expressions().map(|e| Arc::from(&**e)).collect(),
        }
    }

    /// The message of a `state` alert for sensor `sensor_id` with these values: the plain one of `text`, or the
    /// template filled in.
    pub(crate) fn render(&self, text: &RuleText, state: AlertState, sensor_id: &str, values: &Values) -> Arc<str> {
        let (message, own) = match state {
            AlertState::Firing => (&self.message, &text.message),
            AlertState::Resolved => (&self.resolve_message, &text.resolve_message),
        };
        match (message, own) {
            (Message::Plain(_), Some(message)) | (Message::Plain(message), None) => Arc::clone(message),
            (Message::Template(template), _) => Arc::from(template.render(sensor_id, values)),
        }
    }

    /// Whether the rule applies to the sensor `id`.
    pub(crate) fn applies_to(&self, id: &str) -> bool {
        self.sensors.is_empty() || self.sensors.iter().any(|p| p.matches(id))
    }

    /// Whether the rule needs a sensor's history (window functions or absence), so stateless evaluation skips it.
    pub(crate) fn needs_history(&self) -> bool {
        match &self.watch {
            Watch::Absence(_) => true,
            Watch::Condition { condition, resolve } => {
                condition.stateful || resolve.as_ref().is_some_and(|r| r.stateful)
            }
        }
    }
}

pub(crate) fn compile_rule(index: usize, spec: RuleSpec, metrics: &mut MetricTable) -> Result<Rule, Vec<RuleSetError>> {
    let mut errors = Vec::new();
    let mut windows = Vec::new();
    let mut compile_field = |field, text: &Option<String>, windows: &mut Vec<WindowFn>| {
        let text = text.as_deref()?;
        match compile(text, metrics, windows) {
            Ok(condition) => Some(condition),
            Err(error) => {
                errors.push(RuleSetError::Field { rule: index, field, error });
                None
            }
        }
    };
    let condition = compile_field(RuleField::Condition, &spec.condition, &mut windows);
    let resolve = compile_field(RuleField::Resolve, &spec.resolve, &mut windows);
    let watch = match (spec.absent_for, condition) {
        (Some(duration), _) => {
            let conditional = [
                ("condition", spec.condition.is_some()),
                ("resolve", spec.resolve.is_some()),
                ("for", spec.timing.hold.is_some()),
                ("keep_firing_for", spec.timing.keep_firing_for.is_some()),
            ];
            for (key, _) in conditional.into_iter().filter(|(_, present)| *present) {
                errors.push(RuleSetError::AbsentWith { rule: index, key });
            }
            Some(Watch::Absence(duration))
        }
        (None, Some(condition)) => Some(Watch::Condition { condition, resolve }),
        (None, None) => {
            if spec.condition.is_none() {
                errors.push(RuleSetError::MissingCondition { rule: index });
            }
            None
        }
    };
    // A placeholder may name the sensor or any metric of the reading.
    let message_text = spec.message.clone().unwrap_or_else(|| spec.name.replace('{', "{{").replace('}', "}}"));
    let mut parse_message = |field, text: &str| {
        Message::parse(text)
            .map_err(|e| {
                let error = ConditionError { span: e.span, message: e.message };
                errors.push(RuleSetError::Field { rule: index, field, error });
            })
            .ok()
    };
    let message = parse_message(RuleField::Message, &message_text);
    let resolve_message = match &spec.resolve_message {
        Some(text) => parse_message(RuleField::ResolveMessage, text),
        // Only when the message is good, so that its error is reported once.
        None if message.is_some() => {
            parse_message(RuleField::Message, &format!("{DEFAULT_RESOLVE_PREFIX}{message_text}"))
        }
        None => None,
    };
    for name in spec.labels.keys() {
        if let Some(reason) = label_name_error(name) {
            errors.push(RuleSetError::Label { rule: index, name: name.clone(), reason });
        }
    }
    match (watch, message, resolve_message) {
        (Some(watch), Some(message), Some(resolve_message)) if errors.is_empty() => Ok(Rule {
            name: Arc::from(spec.name.as_str()),
            sensors: spec.sensors.iter().map(|p| SensorPattern::new(p)).collect(),
            spec,
            message,
            resolve_message,
            watch,
            windows,
        }),
        _ => Err(errors),
    }
}

/// The text a file wrote, else the parsed value's written form, else empty.
fn as_written(text: &Option<String>, parsed: Option<String>) -> String {
    text.clone().or(parsed).unwrap_or_default()
}

/// Why `name` cannot name a label, if it cannot.
fn label_name_error(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        Some("a label name is a letter or `_`, then letters, digits and `_`")
    } else if RESERVED_LABELS.contains(&name) {
        Some("every alert carries it already")
    } else {
        None
    }
}
