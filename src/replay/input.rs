//! Recorded readings for `alertstream replay`: JSON lines of readings (the proto3 JSON form the HTTP endpoint takes,
//! `time` required), or CSV with a `timestamp` or `time` column (RFC 3339, or `YYYY-MM-DD HH:MM:SS` read as UTC), a
//! `sensor_id` column or else the file's stem as the sensor, and every other column a metric.

use std::{
    io::BufRead,
    path::Path,
    str::FromStr as _,
    time::{SystemTime, UNIX_EPOCH},
};

use alertstream_engine::{Reading, Values};

use crate::http::reading_from_json;

/// Why a recorded file cannot be replayed: `FILE:LINE: message`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct InputError {
    /// The file, as given.
    pub file: String,
    /// The 1-based line (0 for the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads every reading of `path`, in file order, handing each to `each`.
///
/// # Errors
/// The file cannot be read, or a line is not a reading.
pub fn read(path: &Path, each: &mut dyn FnMut(Reading)) -> Result<(), InputError> {
    let shown = path.display().to_string();
    let fail = |line: usize, message: String| InputError { file: shown.clone(), line, message };
    let file = std::fs::File::open(path).map_err(|e| fail(0, format!("cannot read: {e}")))?;
    let reader = std::io::BufReader::new(file);
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        read_csv(reader, &stem, each).map_err(|(line, message)| fail(line, message))
    } else {
        read_json_lines(reader, each).map_err(|(line, message)| fail(line, message))
    }
}

fn read_json_lines(reader: impl BufRead, each: &mut dyn FnMut(Reading)) -> Result<(), (usize, String)> {
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| (number, format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Value = serde_json::from_str(&line).map_err(|e| (number, format!("not JSON: {e}")))?;
        if object.get("time").is_none() {
            return Err((number, "a recorded reading needs its `time`".to_owned()));
        }
        let mut reading = reading_from_json(line.as_bytes(), UNIX_EPOCH).map_err(|e| (number, e))?;
        if reading.seq == 0 {
            reading.seq = number as u64;
        }
        each(reading);
    }
    Ok(())
}

fn read_csv(reader: impl std::io::Read, stem: &str, each: &mut dyn FnMut(Reading)) -> Result<(), (usize, String)> {
    let mut csv = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(reader);
    let headers = csv.headers().map_err(|e| (1, format!("no header row: {e}")))?.clone();
    let time_column = headers
        .iter()
        .position(|h| h == "timestamp" || h == "time")
        .ok_or_else(|| (1, "no `timestamp` or `time` column".to_owned()))?;
    let sensor_column = headers.iter().position(|h| h == "sensor_id");
    for (index, record) in csv.records().enumerate() {
        // The header is line 1.
        let number = index + 2;
        let record = record.map_err(|e| (number, format!("not CSV: {e}")))?;
        let time = parse_time(record.get(time_column).unwrap_or_default()).map_err(|e| (number, e))?;
        let sensor_id = match sensor_column {
            Some(column) => record.get(column).unwrap_or_default().to_owned(),
            None => stem.to_owned(),
        };
        let mut values = Values::default();
        for (column, cell) in record.iter().enumerate() {
            if column == time_column || Some(column) == sensor_column || cell.is_empty() {
                continue;
            }
            let value: f64 =
                cell.parse().map_err(|_| (number, format!("`{}` is not a number: {cell}", &headers[column])))?;
            alertstream_engine::insert_metric(&mut values, headers[column].to_owned(), value);
        }
        each(Reading { sensor_id, values, seq: (number - 1) as u64, time });
    }
    Ok(())
}

/// RFC 3339, or `YYYY-MM-DD HH:MM:SS` (with optional fractional seconds) read as UTC.
fn parse_time(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("`{text}` is not a time: write RFC 3339 (2024-05-01T08:00:00Z) or 2024-05-01 08:00:00 (UTC)");
    let rfc3339 = if text.len() >= 19 && text.as_bytes()[10] == b' ' && !text.ends_with('Z') && !text.contains('+') {
        format!("{}T{}Z", &text[..10], &text[11..])
    } else {
        text.to_owned()
    };
    let timestamp = prost_types::Timestamp::from_str(&rfc3339).map_err(|_| bad())?;
    SystemTime::try_from(timestamp).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_or_a_plain_utc_date_and_time() {
        let at = |s: u64| UNIX_EPOCH + std::time::Duration::from_secs(s);
        assert_eq!(parse_time("2015-02-26 21:42:53"), Ok(at(1_424_986_973)));
        assert_eq!(parse_time("2015-02-26T21:42:53Z"), Ok(at(1_424_986_973)));
        assert_eq!(parse_time("2015-02-26T22:42:53+01:00"), Ok(at(1_424_986_973)));
        assert!(parse_time("yesterday").unwrap_err().contains("is not a time"));
    }

    #[test]
    fn csv_rows_become_readings_of_the_files_stem_unless_a_sensor_column_names_one() {
        let mut got = Vec::new();
        let text = "timestamp,value,other\n2015-02-26 21:42:53,35,\n2015-02-26 21:47:53,41,2.5\n";
        read_csv(text.as_bytes(), "GOOG", &mut |r| got.push(r)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].sensor_id.as_str(), got[0].seq, got[0].values.len()), ("GOOG", 1, 1));
        assert_eq!((got[1].values["value"], got[1].values["other"]), (41.0, 2.5));
        let mut got = Vec::new();
        read_csv("time,sensor_id,t\n2024-05-01T08:00:00Z,a,1\n".as_bytes(), "x", &mut |r| got.push(r)).unwrap();
        assert_eq!(got[0].sensor_id, "a");
        let error = read_csv("time,t\n2024-05-01T08:00:00Z,hot\n".as_bytes(), "x", &mut |_| {}).unwrap_err();
        assert_eq!(error, (2, "`t` is not a number: hot".to_owned()));
    }
}
