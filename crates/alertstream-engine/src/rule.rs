//! Rules: a [`RuleSpec`] as written, compiled into a [`Rule`] (its conditions, message template, window functions
//! and sensor patterns).

use std::{sync::Arc, time::Duration};

use crate::{
    alert::Severity,
    compile::{Condition, MetricTable, compile},
    condition_error::ConditionError,
    glob::SensorPattern,
    reading::Values,
    rule_set::RuleSetError,
    state::Timing,
    template::Template,
    window::WindowFn,
};

/// A rule as written, before it is compiled. Two rules with equal specs are the same rule (hot reload keeps its
/// state).
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
    /// Carried by every alert of the rule, with `{placeholders}` filled; the name when `None`.
    pub message: Option<String>,
    /// `notify`, `for` and `keep_firing_for`.
    pub timing: Timing,
    /// Fires for a sensor that reported and then has been silent this long (server time); takes no condition.
    pub absent_for: Option<Duration>,
    /// Sensor id patterns the rule applies to (`line-1/*`); empty: every sensor.
    pub sensors: Vec<String>,
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

/// What every alert of a rule carries unchanged: its name, and its message unless that is a template.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    pub(crate) name: Arc<str>,
    pub(crate) message: Option<Arc<str>>,
}

/// A rule's message: fixed, or a template filled per alert.
#[derive(Debug, Clone)]
pub(crate) enum Message {
    Plain(Arc<str>),
    Template(Template),
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    pub(crate) name: Arc<str>,
    pub(crate) message: Message,
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

    /// The rule's labels, shared with every stream.
    pub(crate) fn labels(&self) -> Labels {
        Labels { name: Arc::clone(&self.name), message: self.plain_message().map(Arc::clone) }
    }

    /// Copies of the rule's labels for one stream's own use: counting references to them never touches memory that
    /// streams on other cores count too (a count shared by every stream bounces between cores on every alert).
    pub(crate) fn own_labels(&self) -> Labels {
        Labels { name: Arc::from(&*self.name), message: self.plain_message().map(|m| Arc::from(&**m)) }
    }

    fn plain_message(&self) -> Option<&Arc<str>> {
        match &self.message {
            Message::Plain(message) => Some(message),
            Message::Template(_) => None,
        }
    }

    /// The message of an alert for sensor `sensor_id` with these values: the plain one of `labels`, or the
    /// template filled in.
    pub(crate) fn render(&self, labels: &Labels, sensor_id: &str, values: &Values) -> Arc<str> {
        match (&self.message, &labels.message) {
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
    let message = match Template::parse(&message_text) {
        Ok(template) => Some(match template.as_plain() {
            Some(plain) => Message::Plain(Arc::from(plain)),
            None => Message::Template(template),
        }),
        Err(e) => {
            let error = ConditionError { span: e.span, message: e.message };
            errors.push(RuleSetError::Field { rule: index, field: RuleField::Message, error });
            None
        }
    };
    match (watch, message) {
        (Some(watch), Some(message)) if errors.is_empty() => Ok(Rule {
            name: Arc::from(spec.name.as_str()),
            sensors: spec.sensors.iter().map(|p| SensorPattern::new(p)).collect(),
            spec,
            message,
            watch,
            windows,
        }),
        _ => Err(errors),
    }
}
