//! The NAB data as the benchmark reads it from a directory laid out as NAB's (`corpus/<category>/<name>.csv` of
//! `timestamp,value` rows, `labels/combined_windows.json`): each series with its rows, its windows as row ranges,
//! and the opaque sensor id it streams under.

use std::path::{Path, PathBuf};

use super::score::{Corpus, File};
use crate::BoxError;

/// One labelled series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name in NAB, `<category>/<name>.csv`.
    pub name: String,
    /// The sensor id it streams under: `s` and its number, so that no rule can tell one series from another.
    pub sensor_id: String,
    /// Its CSV file.
    pub path: PathBuf,
    /// Each row's time, in seconds since the Unix epoch (UTC).
    pub times: Vec<i64>,
    /// Each row's value.
    pub values: Vec<f64>,
}

/// The series of a NAB directory, in name order, and their windows for scoring.
#[derive(Debug, Clone)]
pub struct Nab {
    /// The series, in name order.
    pub series: Vec<Series>,
    /// The same files for the scorer, in the same order.
    pub corpus: Corpus,
}

impl Nab {
    /// Reads every series named in `dir/labels/combined_windows.json` from `dir/corpus`.
    ///
    /// # Errors
    /// A file is missing or malformed, or a window's limits are not times of its file's rows.
    pub fn load(dir: &Path) -> Result<Self, BoxError> {
        let labels = dir.join("labels/combined_windows.json");
        let text = std::fs::read_to_string(&labels).map_err(|e| format!("{}: {e}", labels.display()))?;
        let windows: std::collections::BTreeMap<String, Vec<[String; 2]>> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", labels.display()))?;
        let mut nab = Self { series: Vec::new(), corpus: Corpus::default() };
        for (number, (name, limits)) in windows.into_iter().enumerate() {
            let path = dir.join("corpus").join(&name);
            let (times, values) = read_series(&path)?;
            let mut rows = Vec::new();
            for [start, end] in &limits {
                let row_of = |limit: &str| -> Result<usize, BoxError> {
                    let time = parse_time(limit).ok_or_else(|| format!("{name}: bad window limit {limit}"))?;
                    times.iter().position(|&t| t == time).ok_or_else(|| format!("{name}: no row at {limit}").into())
                };
                rows.push((row_of(start)?, row_of(end)?));
            }
            nab.corpus.files.push(File::new(times.len(), rows));
            nab.series.push(Series { name, sensor_id: format!("s{number:02}"), path, times, values });
        }
        Ok(nab)
    }

    /// The series streamed as `sensor_id`, by its position.
    pub fn position(&self, sensor_id: &str) -> Option<usize> {
        self.series.iter().position(|s| s.sensor_id == sensor_id)
    }
}

fn read_series(path: &Path) -> Result<(Vec<i64>, Vec<f64>), BoxError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut times = Vec::new();
    let mut values = Vec::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        let bad = || format!("{shown}:{}: not `timestamp,value`", index + 1);
        let (time, value) = line.split_once(',').ok_or_else(bad)?;
        times.push(parse_time(time).ok_or_else(bad)?);
        values.push(value.trim().parse().map_err(|_| bad())?);
    }
    Ok((times, values))
}

/// `YYYY-MM-DD HH:MM:SS` with optional fractional seconds (dropped), as UTC seconds since the Unix epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let field = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm), March-based years.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_seconds_and_fractions_are_dropped() {
        assert_eq!(parse_time("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_time("2015-02-26 21:42:53"), Some(1_424_986_973));
        assert_eq!(parse_time("2014-04-10 07:15:00.000000"), parse_time("2014-04-10 07:15:00"));
        assert_eq!(parse_time("2016-02-29 00:00:00"), Some(1_456_704_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
