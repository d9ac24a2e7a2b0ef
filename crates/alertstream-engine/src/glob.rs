//! Sensor id patterns for a rule's `sensors`: `*` matches any run of characters within one `/`-separated segment.

/// One compiled pattern, such as `line-1/*` or `*/temp-*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SensorPattern {
    segments: Vec<String>,
}

impl SensorPattern {
    /// Compiles a pattern; it matches ids with as many `/`-separated segments as it has.
    pub(crate) fn new(pattern: &str) -> Self {
        Self { segments: pattern.split('/').map(str::to_owned).collect() }
    }

    /// Whether `id` matches.
    pub(crate) fn matches(&self, id: &str) -> bool {
        let mut parts = id.split('/');
        for segment in &self.segments {
            match parts.next() {
                Some(part) if wildcard(segment.as_bytes(), part.as_bytes()) => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of bytes (greedy with backtracking to the last star).
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_stay_within_a_segment() {
        for (pattern, id, expected) in [
            ("line-1/*", "line-1/temp", true),
            ("line-1/*", "line-1/", true),
            ("line-1/*", "line-1", false),
            ("line-1/*", "line-1/a/b", false),
            ("line-1/*", "line-2/temp", false),
            ("*/temp-*", "line-9/temp-3", true),
            ("*/temp-*", "line-9/pressure", false),
            ("*", "anything", true),
            ("*", "a/b", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("**", "", true),
        ] {
            assert_eq!(SensorPattern::new(pattern).matches(id), expected, "{pattern} vs {id}");
        }
    }
}
