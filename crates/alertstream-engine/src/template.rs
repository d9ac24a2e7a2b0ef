//! Message templates: `"temperature {temperature} below 10 on {sensor_id}"`, filled from the reading.
//!
//! A placeholder names the sensor or any metric of the reading, read by the rule or not; one the reading lacks
//! prints as `-`. Numbers print in their shortest form (`8`, not `8.0`). `{{` and `}}` stand for literal braces.

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
    /// Compiles `text`.
    pub(crate) fn parse(text: &str) -> Result<Self, TemplateError> {
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
                    if name.is_empty() {
                        return Err(TemplateError {
                            span: i..end + 1,
                            message: "empty placeholder `{}` in message: name a metric or {sensor_id}, or write `{{` \
                                      and `}}` for literal braces"
                                .into(),
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

    /// Fills the placeholders; a metric the values lack prints as `-`.
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
                    None => out.push('-'),
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
        Template::parse(text)
    }

    #[test]
    fn renders_numbers_in_their_shortest_form() {
        let values = Values::from_iter([("temperature".to_owned(), 8.0), ("pH".to_owned(), 5.55)]);
        let template = parse("temperature {temperature} below 10 on {sensor_id} (pH {pH}) {{ok}}").unwrap();
        assert_eq!(template.render("line-1", &values), "temperature 8 below 10 on line-1 (pH 5.55) {ok}");
        assert_eq!(template.as_plain(), None);
        assert_eq!(parse("plain").unwrap().as_plain(), Some("plain"));
        assert_eq!(parse("{pH}").unwrap().render("s", &Values::default()), "-");
    }

    #[test]
    fn any_metric_of_the_reading_may_be_named_and_a_missing_one_prints_a_dash() {
        let values = Values::from_iter([("pH".to_owned(), 6.0), ("temperature".to_owned(), 21.5)]);
        let template = parse("pH {pH} at temperature {temperature}, flow {flow}").unwrap();
        assert_eq!(template.render("s", &values), "pH 6 at temperature 21.5, flow -");
    }

    #[test]
    fn empty_or_broken_placeholders_are_errors() {
        assert_eq!(parse("too hot: {}").unwrap_err().span, 9..11);
        assert!(parse("too hot: {}").unwrap_err().message.starts_with("empty placeholder `{}` in message"));
        assert_eq!(parse("a {pH").unwrap_err().span, 2..3);
        assert_eq!(parse("a } b").unwrap_err().span, 2..3);
    }
}
