//! Logging that never takes the program down. Log lines go to stderr; one that cannot be written (stderr closed,
//! a log shipper's pipe gone) is dropped and counted, never a panic. tracing-subscriber's own reaction to a failed
//! write is to `eprintln!` about it, which panics on a broken stderr inside whatever task was logging (the signal
//! handler, the reloader): so failures are absorbed here, below it, and its internal error log is off.

use std::{
    io::{self, IsTerminal as _, Write as _},
    sync::atomic::{AtomicU64, Ordering},
};

use tracing_subscriber::fmt::MakeWriter;

/// Log lines that could not be written, since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: stderr, at the level of `RUST_LOG` (default `info`), in `format`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LossyStderr)
        .log_internal_errors(false)
        .with_ansi(io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// How many log lines could not be written so far.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Writes `text` and a newline to stdout, or nothing if stdout is gone (`alertstream check | head`).
pub fn say(text: &str) {
    let _ = writeln!(io::stdout().lock(), "{text}");
}

/// Writes `text` and a newline to stderr, or counts it dropped if stderr is gone.
pub fn complain(text: &str) {
    if writeln!(io::stderr().lock(), "{text}").is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Stderr for tracing: every write succeeds as far as the subscriber knows; a failed one is counted.
#[derive(Debug, Clone, Copy)]
struct LossyStderr;

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = LossyStderr;

    fn make_writer(&'a self) -> LossyStderr {
        LossyStderr
    }
}

impl io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One event is one write of its whole formatted line.
        if io::stderr().lock().write_all(buf).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Unbuffered: a line is out (or dropped) when its write returns.
        let _ = io::stderr().flush();
        Ok(())
    }
}
