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
use crate::{clock::Clock, http::alert_to_json};

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
}

/// The file being written, under its hidden name.
struct OpenFile {
    file: File,
    hidden: PathBuf,
    complete: PathBuf,
    bytes: u64,
    opened: Instant,
}

impl JsonLines {
    pub(super) fn new(dir: PathBuf, max_bytes: u64, max_age: Duration) -> Self {
        let started = Clock::System.now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        let stem = format!("alertstream-{started}-{}", std::process::id());
        Self { dir, max_bytes, max_age, stem, next: 0, open: None }
    }

    async fn open(&mut self) -> std::io::Result<&mut OpenFile> {
        if self.open.is_none() {
            tokio::fs::create_dir_all(&self.dir).await?;
            let name = format!("{}-{}.jsonl", self.stem, self.next);
            let hidden = self.dir.join(format!(".{name}"));
            let file = File::create(&hidden).await?;
            self.next += 1;
            let complete = self.dir.join(name);
            self.open = Some(OpenFile { file, hidden, complete, bytes: 0, opened: Instant::now() });
        }
        Ok(self.open.as_mut().unwrap_or_else(|| unreachable!("opened above")))
    }

    /// Completes the open file: on disk, then renamed into place.
    async fn complete(&mut self) -> std::io::Result<()> {
        let Some(open) = &mut self.open else { return Ok(()) };
        open.file.sync_data().await?;
        tokio::fs::rename(&open.hidden, &open.complete).await?;
        tracing::debug!(file = %open.complete.display(), bytes = open.bytes, "Completed an alerts file.");
        self.open = None;
        Ok(())
    }
}

fn lines(batch: &[Arc<SinkAlert>]) -> Vec<u8> {
    let mut text = Vec::with_capacity(batch.len() * 256);
    for alert in batch {
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut text, &alert_to_json(&alert.alert));
        text.push(b'\n');
    }
    text
}

fn retry(what: &str, path: &Path, error: std::io::Error) -> DeliveryError {
    DeliveryError::Retry(format!("cannot {what} {}: {error}", path.display()))
}

impl Deliver for JsonLines {
    async fn deliver(&mut self, batch: &[Arc<SinkAlert>]) -> Result<(), DeliveryError> {
        let text = lines(batch);
        let dir = self.dir.clone();
        let open = self.open().await.map_err(|e| retry("create a file in", &dir, e))?;
        let before = open.bytes;
        let written = async {
            open.file.write_all(&text).await?;
            open.file.flush().await
        }
        .await;
        if let Err(error) = written {
            // As if none of it was written, so that the retry does not write part of it twice.
            let undone = async {
                open.file.set_len(before).await?;
                open.file.seek(SeekFrom::Start(before)).await.map(drop)
            }
            .await;
            if undone.is_err() {
                // The file cannot be trusted: it is left hidden, and the next batch starts another.
                tracing::error!(file = %open.hidden.display(), "Abandoned an alerts file after a failed write.");
                self.open = None;
            }
            return Err(retry("write to a file in", &dir, error));
        }
        open.bytes += text.len() as u64;
        if open.bytes >= self.max_bytes {
            self.complete().await.map_err(|e| retry("complete a file in", &dir, e))?;
        }
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
