//! Watching files that a running server reloads (the rules file, TLS certificates, the token file): on SIGHUP, and
//! when any of them changes. Their directories are watched, not the files, because editors and Kubernetes replace a
//! file by renaming another over it, and a Kubernetes ConfigMap swaps a `..data` symlink, an event that never names
//! the file: any change in a directory wakes the watch, which reloads only if some file's content changed.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Changes to a file come in bursts (truncate, write, rename): wait this long after the first for the rest.
const SETTLE: Duration = Duration::from_millis(100);

/// Why a watch could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The SIGHUP handler could not be installed.
    #[error("cannot handle SIGHUP: {0}")]
    Signal(#[from] std::io::Error),
    /// A file's directory cannot be watched.
    #[error("cannot watch {dir}: {source}")]
    Watch {
        /// The directory.
        dir: String,
        /// The watcher's error.
        source: notify::Error,
    },
}

/// Why a reload happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The process got SIGHUP.
    Hangup,
    /// A watched file's content changed.
    FileChanged,
}

impl Cause {
    /// How the log names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Hangup => "SIGHUP",
            Cause::FileChanged => "file changed",
        }
    }
}

/// Calls `reload` on SIGHUP and whenever the content of one of `files` changes, until the process ends.
///
/// # Errors
/// The signal handler or a directory watch cannot be set up.
pub fn watch_files(files: Vec<PathBuf>, mut reload: impl FnMut(Cause) + Send + 'static) -> Result<(), WatchError> {
    let mut hangup = hangup()?;
    let (changes_tx, mut changes) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a wake-up: nothing is lost.
            let _ = changes_tx.try_send(());
        }
    })
    .map_err(|source| WatchError::Watch { dir: "(watcher)".to_owned(), source })?;
    let dirs: BTreeSet<PathBuf> = files.iter().map(|file| directory(file)).collect();
    for dir in dirs {
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch { dir: dir.display().to_string(), source })?;
    }
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        let mut last = contents(&files);
        loop {
            let cause = tokio::select! {
                _ = hangup.recv() => Cause::Hangup,
                Some(()) = changes.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while changes.try_recv().is_ok() {}
                    Cause::FileChanged
                }
                else => return,
            };
            let now = contents(&files);
            if cause == Cause::FileChanged && now == last {
                tracing::debug!(files = ?files, "A watched directory changed, the files did not: nothing to reload.");
                continue;
            }
            last = now;
            reload(cause);
        }
    });
    Ok(())
}

/// Calls `on_hangup` on each SIGHUP, until the process ends.
///
/// # Errors
/// The signal handler cannot be installed.
pub fn on_hangup(mut on_hangup: impl FnMut() + Send + 'static) -> Result<(), WatchError> {
    let mut hangup = hangup()?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            on_hangup();
        }
    });
    Ok(())
}

/// Each file's bytes, or `None` where it cannot be read.
fn contents(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|file| std::fs::read(file).ok()).collect()
}

fn directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn hangup() -> std::io::Result<Hangup> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;

#[cfg(not(unix))]
fn hangup() -> std::io::Result<Hangup> {
    Ok(Hangup)
}

/// No SIGHUP off Unix: a signal that never comes.
#[cfg(not(unix))]
struct Hangup;

#[cfg(not(unix))]
impl Hangup {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}
