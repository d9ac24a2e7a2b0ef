//! Message templates: `"temperature {temperature} below 10 on {sensor_id}"`, filled from the reading.
//!
//! Numbers print in their shortest form (`8`, not `8.0`). `{{` and `}}` stand for literal braces.

use std::{fmt::Write as _, ops::Range};

use crate::reading::Values;

/// The placeholder that names the reading's sensor.
pub(crate) const SENSOR_ID: &str = "sensor_id";

/// A compiled message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    SensorId,
    Metric(String),
}

/// A problem in a template: what and where (a byte range of the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub(crate) span: Range<usize>,
    pub(crate) message: String,
}

impl Template {
    /// Compiles `text`; `known(name)` says whether a placeholder names something the rule can fill.
    pub(crate) fn parse(text: &str, known: impl Fn(&str) -> bool) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let Some(end) = text[i..].find('}').map(|e| i + e) else {
                        return Err(TemplateError {
                            span: i..i + 1,
                            message: "unclosed `{` in message: write `{{` for a literal brace".into(),
                        });
                    };
                    let name = &text[i + 1..end];
                    if name != SENSOR_ID && !known(name) {
                        return Err(TemplateError {
                            span: i..end + 1,
                            message: format!(
                                "unknown placeholder `{{{name}}}` in message: use {{sensor_id}} or a metric the rule reads"
                            ),
                        });
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(if name == SENSOR_ID { Part::SensorId } else { Part::Metric(name.to_owned()) });
                    while chars.peek().is_some_and(|&(j, _)| j <= end) {
                        chars.next();
                    }
                }
                '}' => {
                    return Err(TemplateError {
                        span: i..i + 1,
                        message: "unmatched `}` in message: write `}}` for a literal brace".into(),
                    });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// The text when it has no placeholders.
    pub(crate) fn as_plain(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// Fills the placeholders; a metric the values lack prints as `?`.
    pub(crate) fn render(&self, sensor_id: &str, values: &Values) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::SensorId => out.push_str(sensor_id),
                Part::Metric(name) => match values.get(name) {
                    Some(v) => {
                        let _ = write!(out, "{v}");
                    }
                    None => out.push('?'),
                },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse(text, |name| name == "temperature" || name == "pH")
    }

    #[test]
    fn renders_numbers_in_their_shortest_form() {
        let values = Values::from_iter([("temperature".to_owned(), 8.0), ("pH".to_owned(), 5.55)]);
        let template = parse("temperature {temperature} below 10 on {sensor_id} (pH {pH}) {{ok}}").unwrap();
        assert_eq!(template.render("line-1", &values), "temperature 8 below 10 on line-1 (pH 5.55) {ok}");
        assert_eq!(template.as_plain(), None);
        assert_eq!(parse("plain").unwrap().as_plain(), Some("plain"));
        assert_eq!(parse("{pH}").unwrap().render("s", &Values::default()), "?");
    }

    #[test]
    fn unknown_or_broken_placeholders_are_errors() {
        assert_eq!(
            parse("too hot: {temp}").unwrap_err(),
            TemplateError {
                span: 9..15,
                message: "unknown placeholder `{temp}` in message: use {sensor_id} or a metric the rule reads".into()
            }
        );
        assert_eq!(parse("a {pH").unwrap_err().span, 2..3);
        assert_eq!(parse("a } b").unwrap_err().span, 2..3);
    }
}
