//! The text forms of engine values, each written once: the words a rules file, a rule test and `ListRules` use for
//! [`Severity`], [`AlertState`], [`Notify`] and [`Hold`] (`FromStr` and `Display`, each the other's inverse), and
//! durations (`500ms`, `30s`, `5m`, `1h`).

use std::{fmt, str::FromStr, time::Duration};

use crate::{
    alert::{AlertState, Severity},
    state::{Hold, Notify},
};

/// A text that is not the form of the value asked for; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TextError(String);

impl Severity {
    /// The name used in rules files.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = TextError;

    fn from_str(text: &str) -> Result<Self, TextError> {
        Ok(match text {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            _ => return Err(TextError(format!("unknown severity `{text}`: use info, warning or critical"))),
        })
    }
}

impl AlertState {
    /// The name used in rule tests.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

impl FromStr for AlertState {
    type Err = TextError;

    fn from_str(text: &str) -> Result<Self, TextError> {
        Ok(match text {
            "firing" => AlertState::Firing,
            "resolved" => AlertState::Resolved,
            _ => return Err(TextError(format!("unknown state `{text}`: use firing or resolved"))),
        })
    }
}

impl Notify {
    /// The name used in rules files.
    pub fn as_str(self) -> &'static str {
        match self {
            Notify::Change => "change",
            Notify::Every => "every",
        }
    }
}

impl FromStr for Notify {
    type Err = TextError;

    fn from_str(text: &str) -> Result<Self, TextError> {
        Ok(match text {
            "change" => Notify::Change,
            "every" => Notify::Every,
            _ => return Err(TextError(format!("unknown notify `{text}`: use change or every"))),
        })
    }
}

/// `for` and `keep_firing_for`: a duration (`30s`) or a count of readings (`5 readings`, `1 reading`).
impl FromStr for Hold {
    type Err = TextError;

    fn from_str(text: &str) -> Result<Self, TextError> {
        let trimmed = text.trim();
        if let Some(count) = trimmed.strip_suffix("readings").or_else(|| trimmed.strip_suffix("reading")) {
            let count: u64 = count.trim().parse().map_err(|_| {
                TextError(format!("`{text}` is not a count: write a whole number, as in \"5 readings\""))
            })?;
            if count == 0 {
                return Err(TextError("a count must be at least 1 reading".to_owned()));
            }
            return Ok(Hold::Readings(count));
        }
        parse_duration(trimmed)
            .map(Hold::Duration)
            .map_err(|e| TextError(format!("{e}; or a count, as in \"5 readings\"")))
    }
}

macro_rules! display_as_str {
    ($($type:ty),*) => {$(
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

display_as_str!(Severity, AlertState, Notify);

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Hold::Readings(1) => f.write_str("1 reading"),
            Hold::Readings(n) => write!(f, "{n} readings"),
            Hold::Duration(d) => f.write_str(&format_duration(d)),
        }
    }
}

/// Parses a duration: one or more parts, each a number (a fraction allowed) and a unit, `ms`, `s`, `m` or `h`, with
/// or without spaces between them: `500ms`, `30s`, `1.5s`, `1h30m`, `2m 30s`. It must come to whole milliseconds.
///
/// # Errors
/// The text is not such a duration; the message names the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, TextError> {
    let not_a_duration = || {
        TextError(format!(
            "`{text}` is not a duration: write a number and a unit, as in 500ms, 30s, 1.5s, 5m, 1h, 1h30m or 1d"
        ))
    };
    let no_unit = || TextError(format!("`{text}` has no known unit: use ms, s, m, h or d, as in 30s"));
    let too_long = || TextError(format!("`{text}` is too long a duration"));
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(not_a_duration());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if number.is_empty() {
            return Err(not_a_duration());
        }
        let per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(no_unit()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(not_a_duration());
        }
        let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_long())? };
        let mut millis = whole.checked_mul(per).ok_or_else(too_long)?;
        if !fraction.is_empty() {
            // Exact: the fraction's digits times the unit, over their power of ten, must be whole milliseconds.
            let places = u32::try_from(fraction.len()).map_err(|_| not_a_duration())?;
            let (digits, scale) = match (fraction.parse::<u128>(), 10u128.checked_pow(places)) {
                (Ok(digits), Some(scale)) => (digits, scale),
                _ => return Err(TextError(format!("`{text}` is not a whole number of milliseconds"))),
            };
            let product = digits * u128::from(per);
            if product % scale != 0 {
                return Err(TextError(format!("`{text}` is not a whole number of milliseconds")));
            }
            let part = u64::try_from(product / scale).map_err(|_| too_long())?;
            millis = millis.checked_add(part).ok_or_else(too_long)?;
        }
        total = total.checked_add(millis).ok_or_else(too_long)?;
        rest = after.trim_start();
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration one way everywhere (rules listed, every message): hours, minutes and seconds, the seconds
/// with the milliseconds as a fraction (`1h 30m`, `59m 59.482s`, `1.5s`), and under a second in milliseconds
/// (`500ms`). [`parse_duration`] reads it back.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        return if millis == 0 { "0s".to_owned() } else { format!("{millis}ms") };
    }
    let (hours, minutes, seconds, rest) =
        (millis / 3_600_000, millis / 60_000 % 60, millis / 1_000 % 60, millis % 1_000);
    let mut parts = Vec::new();
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if minutes > 0 {
        parts.push(format!("{minutes}m"));
    }
    match (seconds, rest) {
        (0, 0) => {}
        (seconds, 0) => parts.push(format!("{seconds}s")),
        (seconds, rest) => {
            let fraction = format!("{rest:03}");
            parts.push(format!("{seconds}.{}s", fraction.trim_end_matches('0')));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value's text form reads back as the value.
    fn round_trips<T: FromStr<Err = TextError> + fmt::Display + PartialEq + fmt::Debug>(values: &[T]) {
        for value in values {
            assert_eq!(value.to_string().parse::<T>().as_ref(), Ok(value), "{value}");
        }
    }

    #[test]
    fn names_read_back_as_their_values() {
        round_trips(&[Severity::Info, Severity::Warning, Severity::Critical]);
        round_trips(&[AlertState::Firing, AlertState::Resolved]);
        round_trips(&[Notify::Change, Notify::Every]);
        round_trips(&[Hold::Readings(1), Hold::Readings(5), Hold::Duration(Duration::from_millis(1500))]);
        assert_eq!(Hold::Readings(1).to_string(), "1 reading");
        assert_eq!("3 readings".parse(), Ok(Hold::Readings(3)));
        assert_eq!("30s".parse(), Ok(Hold::Duration(Duration::from_secs(30))));
    }

    #[test]
    fn unknown_words_name_what_is_accepted() {
        for (error, expected) in [
            ("loud".parse::<Severity>().unwrap_err(), "unknown severity `loud`: use info, warning or critical"),
            ("often".parse::<Notify>().unwrap_err(), "unknown notify `often`: use change or every"),
            ("FIRING".parse::<AlertState>().unwrap_err(), "unknown state `FIRING`: use firing or resolved"),
            ("0 readings".parse::<Hold>().unwrap_err(), "a count must be at least 1 reading"),
            (
                "x readings".parse::<Hold>().unwrap_err(),
                "`x readings` is not a count: write a whole number, as in \"5 readings\"",
            ),
            (
                "3".parse::<Hold>().unwrap_err(),
                "`3` has no known unit: use ms, s, m, h or d, as in 30s; or a count, as in \"5 readings\"",
            ),
        ] {
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn durations() {
        for (text, millis) in [("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("0s", 0)] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)), "{text}");
            assert_eq!(
                parse_duration(&format_duration(Duration::from_millis(millis))),
                Ok(Duration::from_millis(millis))
            );
        }
        assert!(parse_duration("30").unwrap_err().to_string().contains("no known unit"));
        assert!(parse_duration("s").unwrap_err().to_string().contains("not a duration"));
        assert!(parse_duration("").unwrap_err().to_string().contains("not a duration"));
        assert!(parse_duration("1.2.3s").unwrap_err().to_string().contains("not a duration"));
        assert!(parse_duration("1.0005s").unwrap_err().to_string().contains("not a whole number of milliseconds"));
        assert!(parse_duration("30 seconds").unwrap_err().to_string().contains("no known unit"));
        assert!(parse_duration("99999999999999999h").unwrap_err().to_string().contains("too long"));
    }

    #[test]
    fn fractions_and_compound_durations_read_and_every_duration_is_written_one_way() {
        for (text, millis) in [
            ("1.5s", 1_500),
            (".5s", 500),
            ("1h30m", 5_400_000),
            ("1h 30m", 5_400_000),
            ("2m30s", 150_000),
            ("1.5h", 5_400_000),
            ("0.25m", 15_000),
            ("1h1ms", 3_600_001),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)), "{text}");
        }
        for (millis, written) in [
            (90_000, "1m 30s"),
            (3_599_482, "59m 59.482s"),
            (3_600_000, "1h"),
            (5_400_000, "1h 30m"),
            (1_500, "1.5s"),
            (500, "500ms"),
            (1_010, "1.01s"),
            (0, "0s"),
        ] {
            let duration = Duration::from_millis(millis);
            assert_eq!(format_duration(duration), written);
            assert_eq!(parse_duration(written), Ok(duration), "{written} reads back");
        }
    }
}
