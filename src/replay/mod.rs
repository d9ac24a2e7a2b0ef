//! `alertstream replay --rules R FILE...`: recorded readings through a rules file offline, at engine speed, with the
//! engine code the server runs: the alerts as proto3 JSON lines, and per rule how often it fired, how long it stayed
//! firing and how often it fired again after resolving. Backtesting, as Kapacitor's record and replay.
//!
//! The readings of every file go through one stream's state, file after file, in file order, with the reading's own
//! time as the server's: absence is checked at each reading's time, and nothing is too far in the future.

pub mod input;
mod summary;

use std::{io::Write, path::PathBuf, time::Duration};

use alertstream_engine::{Alert, RuleSet, StreamState};

pub use summary::Summary;

use crate::http::AlertJson;

/// Sensors one replay tracks at most.
const MAX_SENSORS: usize = 1_000_000;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A file cannot be read, or holds something that is not a reading.
    #[error(transparent)]
    Input(#[from] input::InputError),
    /// The alerts cannot be written.
    #[error("cannot write the alerts: {0}")]
    Output(#[from] std::io::Error),
}

/// Replays `files` through `rules` (a reading may be `lateness` behind its sensor's latest), writing each alert as a
/// line of proto3 JSON to `out`.
///
/// # Errors
/// A file cannot be read or has a line that is not a reading, or `out` fails.
pub fn replay(
    rules: &RuleSet,
    files: &[PathBuf],
    lateness: Duration,
    out: &mut impl Write,
) -> Result<Summary, ReplayError> {
    let mut stream = StreamState::new(MAX_SENSORS, lateness);
    let mut summary = Summary::new(rules);
    let mut alerts: Vec<Alert> = Vec::new();
    let mut written: Result<(), std::io::Error> = Ok(());
    for file in files {
        input::read(file, &mut |reading| {
            if written.is_err() {
                return;
            }
            let time = reading.time;
            summary.reading(time);
            rules.check_absence(&mut stream, time, &mut alerts);
            rules.evaluate(&mut stream, reading, time, &mut alerts);
            for alert in alerts.drain(..) {
                summary.alert(&alert);
                written = serde_json::to_writer(&mut *out, &AlertJson { alert: &alert, stale: false })
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                if written.is_err() {
                    return;
                }
            }
        })?;
        std::mem::replace(&mut written, Ok(()))?;
    }
    out.flush()?;
    Ok(summary)
}
