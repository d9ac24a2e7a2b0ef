//! Byte sizes as the command line writes them (`4MiB`, `512KiB`). Durations are the engine's text form
//! (`alertstream_engine::parse_duration`), shared with the rules file.

/// Parses a byte size: a whole number with an optional unit `B`, `KiB`, `MiB`, `GiB` (also `KB`, `MB`, `GB`,
/// read as the same powers of 1024).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let digits = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        for (text, bytes) in [("4MiB", 4 << 20), ("4MB", 4 << 20), ("512", 512), ("64KiB", 64 << 10), ("1GiB", 1 << 30)]
        {
            assert_eq!(parse_byte_size(text), Ok(bytes), "{text}");
        }
        assert!(parse_byte_size("4XB").is_err());
        assert!(parse_byte_size("MiB").is_err());
        assert!(parse_byte_size("99999999999999999999GiB").is_err());
    }
}
