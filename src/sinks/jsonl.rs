//! The JSON-lines sink, for the big-data route: one proto3 JSON alert per line, in files under `dir`. A file is
//! written under a name that starts with `.` (which Spark and Hadoop ignore) and renamed into place once complete,
//! at `max_file_bytes` or `max_file_age`, or at shutdown, so that a reader of the directory (Spark Structured
//! Streaming's `readStream.json(dir)`) sees each file once, whole. Names carry the process's start time, its id and
//! a counter: `alertstream-1764470000000-4242-7.jsonl`, never reused.

use std::{
    io::SeekFrom,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::{
    fs::File,
    io::{AsyncSeekExt as _, AsyncWriteExt as _},
    time::Instant,
};

use super::{
    SinkAlert,
    runner::{Deliver, DeliveryError},
};
use crate::{
    clock::{Clock, timer_deadline},
    http::AlertJson,
};

/// JSON-lines files in a directory.
pub(super) struct JsonLines {
    dir: PathBuf,
    max_bytes: u64,
    max_age: Duration,
    /// `alertstream-<start ms>-<pid>`: what every file of this process starts with.
    stem: String,
    /// The number of the next file.
    next: u64,
    open: Option<OpenFile>,
    /// Alerts of the batch being delivered that are already in completed files: a retry of that batch (after a
    /// failed write) starts after them, so that none is written twice.
    committed: usize,
}

/// The file being written, under its hidden name.
struct OpenFile {
    file: File,
    hidden: PathBuf,
    complete: PathBuf,
    bytes: u64,
    opened: Instant,
    /// A failed write could not be undone: the file is left as it is, hidden.
    broken: bool,
}

impl JsonLines {
    pub(super) fn new(dir: PathBuf, max_bytes: u64, max_age: Duration) -> Self {
        let started = Clock::System.now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        let stem = format!("alertstream-{started}-{}", std::process::id());
        Self { dir, max_bytes, max_age, stem, next: 0, open: None, committed: 0 }
    }

    async fn open(&mut self) -> std::io::Result<&mut OpenFile> {
        if self.open.as_ref().is_some_and(|open| open.broken) {
            self.open = None;
        }
        if self.open.is_none() {
            tokio::fs::create_dir_all(&self.dir).await?;
            let name = format!("{}-{}.jsonl", self.stem, self.next);
            let hidden = self.dir.join(format!(".{name}"));
            let file = File::create(&hidden).await?;
            self.next += 1;
            let complete = self.dir.join(name);
            self.open = Some(OpenFile {
                file,
                hidden,
                complete,
                bytes: 0,
                opened: timer_deadline(Duration::ZERO),
                broken: false,
            });
        }
        Ok(self.open.as_mut().unwrap_or_else(|| unreachable!("opened above")))
    }

    /// Completes the open file: on disk, then renamed into place.
    async fn complete(&mut self) -> std::io::Result<()> {
        let Some(open) = &mut self.open else { return Ok(()) };
        if open.broken {
            self.open = None;
            return Ok(());
        }
        open.file.sync_data().await?;
        tokio::fs::rename(&open.hidden, &open.complete).await?;
        tracing::debug!(file = %open.complete.display(), bytes = open.bytes, "Completed an alerts file.");
        self.open = None;
        Ok(())
    }
}

/// Each alert as one line of proto3 JSON, in one buffer; and where each line ends in it.
fn lines(batch: &[Arc<SinkAlert>]) -> (Vec<u8>, Vec<usize>) {
    let mut text = Vec::with_capacity(batch.len() * 192);
    let mut ends = Vec::with_capacity(batch.len());
    for alert in batch {
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut text, &AlertJson { alert: &alert.alert, stale: alert.stale });
        text.push(b'\n');
        ends.push(text.len());
    }
    (text, ends)
}

/// Appends `text` to `open`, all or, on error, none: a failed write is undone, so that a retry does not write part
/// of it twice. A file whose failed write cannot be undone is left hidden and closed: the next write starts another.
async fn write(open: &mut OpenFile, text: &[u8]) -> std::io::Result<()> {
    let before = open.bytes;
    let written = async {
        open.file.write_all(text).await?;
        open.file.flush().await
    }
    .await;
    match written {
        Ok(()) => {
            open.bytes += text.len() as u64;
            Ok(())
        }
        Err(error) => {
            let undone = async {
                open.file.set_len(before).await?;
                open.file.seek(SeekFrom::Start(before)).await.map(drop)
            }
            .await;
            if undone.is_err() {
                tracing::error!(file = %open.hidden.display(), "Abandoned an alerts file after a failed write.");
                open.broken = true;
            }
            Err(error)
        }
    }
}

fn retry(what: &str, path: &Path, error: std::io::Error) -> DeliveryError {
    DeliveryError::Retry(format!("cannot {what} {}: {error}", path.display()))
}

impl Deliver for JsonLines {
    async fn deliver(&mut self, batch: &[Arc<SinkAlert>]) -> Result<(), DeliveryError> {
        let start = self.committed;
        let (text, ends) = lines(&batch[start..]);
        let (dir, max) = (self.dir.clone(), self.max_bytes);
        // Lines [done, ends.len()) are still to write; `from` is where line `done` starts in `text`.
        let (mut done, mut from) = (0, 0);
        while done < ends.len() {
            let open = self.open().await.map_err(|e| retry("create a file in", &dir, e))?;
            // As many lines as fit under the bound (at least one, however long, in a new file).
            let mut fit = done;
            while fit < ends.len() && (fit == done && open.bytes == 0 || open.bytes + (ends[fit] - from) as u64 <= max)
            {
                fit += 1;
            }
            let to = if fit > done { ends[fit - 1] } else { from };
            if to > from {
                write(open, &text[from..to]).await.map_err(|e| retry("write to a file in", &dir, e))?;
            }
            let full = fit < ends.len() || open.bytes >= max;
            (done, from) = (fit, to);
            if full {
                self.complete().await.map_err(|e| retry("complete a file in", &dir, e))?;
                self.committed = start + done;
            }
        }
        self.committed = 0;
        Ok(())
    }

    fn due_at(&self) -> Option<Instant> {
        self.open.as_ref().map(|open| open.opened + self.max_age)
    }

    async fn due(&mut self) -> Result<(), DeliveryError> {
        let dir = self.dir.clone();
        self.complete().await.map_err(|e| retry("complete a file in", &dir, e))
    }

    async fn finish(&mut self) {
        if let Err(error) = self.complete().await {
            tracing::error!(dir = %self.dir.display(), "Cannot complete the last alerts file: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(seq: u64) -> Arc<SinkAlert> {
        Arc::new(crate::sinks::test_alert(seq))
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_file_is_completed_when_its_age_is_up_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonLines::new(dir.path().to_owned(), 1 << 20, Duration::from_secs(60));
        assert_eq!(sink.due_at(), None, "no file, nothing due");
        let before = timer_deadline(Duration::ZERO);
        sink.deliver(&[alert(1), alert(2)]).await.unwrap();
        let due = sink.due_at().expect("an open file is due at its age");
        assert!(due >= before + Duration::from_secs(60) && due <= timer_deadline(Duration::from_secs(60)));
        let hidden = names(dir.path());
        assert!(hidden.len() == 1 && hidden[0].starts_with(".alertstream-"), "{hidden:?}");
        sink.due().await.unwrap();
        let complete = names(dir.path());
        assert_eq!(complete, [hidden[0].trim_start_matches('.')]);
        assert_eq!(std::fs::read_to_string(dir.path().join(&complete[0])).unwrap().lines().count(), 2);
        assert_eq!(sink.due_at(), None, "the next file opens with the next alert");
    }
}
