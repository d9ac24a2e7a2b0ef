//! A window function's state as bytes, for snapshots: what it holds (its readings, its running sums, its model),
//! from which the derived parts (monotonic deques, the order-statistic tree) are rebuilt on decoding.

use std::collections::VecDeque;

use super::{MAX_WINDOW_READINGS, Robust, Welford, Window, WindowFn, detector};
use crate::snapshot::{
    SnapshotError,
    codec::{Reader, Writer},
};

const BUFFERED: u8 = 0;
const DELTA: u8 = 1;
const EWMA: u8 = 2;
const HISTORY: u8 = 3;
const ROBUST: u8 = 4;
const LAG: u8 = 5;
const NOVELTY: u8 = 6;
const LIKELIHOOD: u8 = 7;
const ANOMALY: u8 = 8;

impl Window {
    /// Writes the state, tagged with its kind.
    pub(crate) fn encode(&self, out: &mut Writer) {
        match self {
            Window::Buffered(buffer) => {
                out.u8(BUFFERED);
                out.entries(buffer.entries.iter());
                // The running sums as they are (rounding included), so that a restored window computes the very
                // values the original would have.
                encode_welford(&buffer.stats, out);
                out.f64(buffer.sum);
                out.u64(buffer.removals as u64);
            }
            Window::Delta(previous) => {
                out.u8(DELTA);
                out.bool(previous.is_some());
                if let Some((time, value)) = previous {
                    out.time(*time);
                    out.f64(*value);
                }
            }
            Window::Ewma(state) => {
                out.u8(EWMA);
                out.bool(state.is_some());
                out.f64(state.unwrap_or(0.0));
            }
            Window::History(stats) => {
                out.u8(HISTORY);
                encode_welford(stats, out);
            }
            Window::Robust(robust) => {
                out.u8(ROBUST);
                out.entries(robust.entries.iter());
            }
            Window::Lag(entries) => {
                out.u8(LAG);
                out.entries(entries.iter());
            }
            Window::Novelty(novelty) => {
                out.u8(NOVELTY);
                novelty.encode(out);
            }
            Window::Likelihood(likelihood) => {
                out.u8(LIKELIHOOD);
                likelihood.encode(out);
            }
            Window::Anomaly(anomaly) => {
                out.u8(ANOMALY);
                anomaly.encode(out);
            }
        }
    }

    /// Reads a state of `function` that [`encode`](Self::encode) wrote.
    ///
    /// # Errors
    /// The bytes are damaged, or hold another kind of state than `function` keeps.
    pub(crate) fn decode(function: &WindowFn, input: &mut Reader<'_>) -> Result<Window, SnapshotError> {
        let tag = input.u8()?;
        let mut window = function.instantiate();
        match (&mut window, tag) {
            (Window::Buffered(buffer), BUFFERED) => {
                for (time, value) in ordered(input.entries()?)? {
                    buffer.insert(time, value);
                }
                buffer.stats = decode_welford(input)?;
                buffer.sum = input.f64()?;
                buffer.removals = usize::try_from(input.u64()?).map_err(|_| SnapshotError::Damaged("a count"))?;
                if buffer.stats.n != buffer.entries.len() || buffer.removals > MAX_WINDOW_READINGS {
                    return Err(SnapshotError::Damaged("a window's sums do not match its readings"));
                }
            }
            (Window::Delta(previous), DELTA) => {
                if input.bool()? {
                    *previous = Some((input.time()?, input.f64()?));
                }
            }
            (Window::Ewma(state), EWMA) => {
                let present = input.bool()?;
                let value = input.f64()?;
                *state = present.then_some(value);
            }
            (Window::History(stats), HISTORY) => *stats = decode_welford(input)?,
            (Window::Robust(robust), ROBUST) => {
                let mut restored = Robust::default();
                for (time, value) in ordered(input.entries()?)? {
                    restored.entries.push_back((time, value));
                    restored.sorted.insert(value);
                }
                *robust = restored;
            }
            (Window::Lag(entries), LAG) => *entries = VecDeque::from(ordered(input.entries()?)?),
            (Window::Novelty(novelty), NOVELTY) => **novelty = detector::Novelty::decode(input)?,
            (Window::Likelihood(likelihood), LIKELIHOOD) => **likelihood = detector::Likelihood::decode(input)?,
            (Window::Anomaly(anomaly), ANOMALY) => **anomaly = detector::Anomaly::decode(input)?,
            _ => return Err(SnapshotError::Damaged("a window's state is of another function")),
        }
        Ok(window)
    }
}

pub(super) fn encode_welford(stats: &Welford, out: &mut Writer) {
    out.u64(stats.n as u64);
    out.f64(stats.mean);
    out.f64(stats.m2);
}

pub(super) fn decode_welford(input: &mut Reader<'_>) -> Result<Welford, SnapshotError> {
    let n = input.u64()?;
    let (mean, m2) = (input.f64()?, input.f64()?);
    // Any count a history could reach (the sums may be infinite or NaN, as a window of `x / 0` makes them).
    if n > 1 << 53 {
        return Err(SnapshotError::Damaged("running statistics out of range"));
    }
    Ok(Welford { n: n as usize, mean, m2 })
}

/// `entries`, in time order as every window keeps them, or an error.
fn ordered(entries: Vec<(std::time::SystemTime, f64)>) -> Result<Vec<(std::time::SystemTime, f64)>, SnapshotError> {
    if !entries.windows(2).all(|pair| pair[0].0 <= pair[1].0) {
        return Err(SnapshotError::Damaged("a window's readings out of time order"));
    }
    Ok(entries)
}
