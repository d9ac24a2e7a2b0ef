//! Parsing of the human-written quantities shared by the CLI and the rules file: durations and byte sizes.

use std::time::Duration;

/// Parses a duration written as a whole number and a unit: `500ms`, `30s`, `5m`, `1h`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text.trim());
    let value: u64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration: write a whole number and a unit, as in 500ms, 30s, 5m or 1h")
    })?;
    let millis_per_unit = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}` has no known unit: use ms, s, m or h, as in 30s")),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Formats a duration in the largest unit that divides it: the inverse of [`parse_duration`].
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if millis != 0 && millis % per == 0 {
            return format!("{}{unit}", millis / per);
        }
    }
    format!("{millis}ms")
}

/// Parses a byte size: a whole number with an optional unit `B`, `KiB`, `MiB`, `GiB` (also `KB`, `MB`, `GB`,
/// read as the same powers of 1024).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let (number, unit) = split_number(text.trim());
    let value: usize =
        number.parse().map_err(|_| format!("`{text}` is not a size: write a whole number and a unit, as in 4MiB"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{text}` has no known unit: use B, KiB, MiB or GiB, as in 4MiB")),
    };
    value.checked_mul(multiplier).ok_or_else(|| format!("`{text}` is too large"))
}

fn split_number(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, millis) in [("500ms", 500), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("0s", 0)] {
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)), "{text}");
            assert_eq!(
                parse_duration(&format_duration(Duration::from_millis(millis))),
                Ok(Duration::from_millis(millis))
            );
        }
        assert_eq!(format_duration(Duration::from_millis(90_000)), "90s");
        assert!(parse_duration("30").unwrap_err().contains("no known unit"));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
        assert!(parse_duration("1.5s").unwrap_err().contains("no known unit"));
    }

    #[test]
    fn byte_sizes() {
        for (text, bytes) in [("4MiB", 4 << 20), ("4MB", 4 << 20), ("512", 512), ("64KiB", 64 << 10), ("1GiB", 1 << 30)]
        {
            assert_eq!(parse_byte_size(text), Ok(bytes), "{text}");
        }
        assert!(parse_byte_size("4XB").is_err());
        assert!(parse_byte_size("MiB").is_err());
    }
}
