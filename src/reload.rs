//! Hot reload of the rules file: on SIGHUP, and when the file changes (its directory is watched, because editors
//! and Kubernetes replace a file by renaming another over it). A new rule set goes through
//! `alertstream_rules::load`, the same path as startup; one that fails validation is rejected with its
//! `file:line:col` errors in the log and the old rules stay live. A good one is published, as [`LiveRules`], to
//! every stream, which moves to it between readings.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};

use alertstream_engine::RuleSet;

/// The live rule snapshot every stream and unary call reads; a reload sends a new one.
pub type LiveRules = watch::Receiver<Arc<RuleSet>>;

/// Changes to a file come in bursts (truncate, write, rename): wait this long after the first for the rest.
const SETTLE: Duration = Duration::from_millis(100);

/// Why reloading could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The SIGHUP handler could not be installed.
    #[error("cannot handle SIGHUP: {0}")]
    Signal(#[from] std::io::Error),
    /// The rules file's directory cannot be watched.
    #[error("cannot watch {dir}: {source}")]
    Watch {
        /// The directory.
        dir: String,
        /// The watcher's error.
        source: notify::Error,
    },
}

/// Reloads `path` into `live` on SIGHUP and whenever the file changes, until the process ends.
///
/// # Errors
/// The signal handler or the file watcher cannot be set up.
pub fn watch_rules_file(path: PathBuf, live: watch::Sender<Arc<RuleSet>>) -> Result<(), ReloadError> {
    let mut hangup = hangup()?;
    let (changes_tx, mut changes) = mpsc::channel(1);
    // Any change in the directory wakes the task, not only events that name the file: a Kubernetes ConfigMap
    // updates `rules.toml` (a symlink into `..data`) by swapping the `..data` symlink, an event that never names
    // it. The task then reloads only if the file's content changed.
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A full channel already holds a wake-up: nothing is lost.
            let _ = changes_tx.try_send(());
        }
    })
    .map_err(|source| ReloadError::Watch { dir: directory(&path).display().to_string(), source })?;
    let dir = directory(&path);
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| ReloadError::Watch { dir: dir.display().to_string(), source })?;
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        let mut last_text = std::fs::read_to_string(&path).ok();
        loop {
            let cause = tokio::select! {
                _ = hangup.recv() => "SIGHUP",
                Some(()) = changes.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while changes.try_recv().is_ok() {}
                    "file changed"
                }
                else => return,
            };
            let text = std::fs::read_to_string(&path).ok();
            if cause == "file changed" && text == last_text {
                tracing::debug!(file = %path.display(), "The rules file's directory changed, the file did not: nothing to reload.");
                continue;
            }
            last_text = text;
            reload(&path, &live, cause);
        }
    });
    Ok(())
}

/// Logs, on each SIGHUP, that there is no rules file to reload (the server runs on its embedded defaults).
///
/// # Errors
/// The signal handler cannot be installed.
pub fn explain_hangup_without_file() -> Result<(), ReloadError> {
    let mut hangup = hangup()?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!(
                "SIGHUP: no --rules file was given, so there is nothing to reload (default rules stay live)."
            );
        }
    });
    Ok(())
}

/// Loads `path` and publishes it, or logs why not; the old rules stay live on any error.
pub fn reload(path: &Path, live: &watch::Sender<Arc<RuleSet>>, cause: &str) {
    match alertstream_rules::load(path) {
        Ok(rules) => {
            let count = rules.rules().len();
            live.send_replace(Arc::new(rules));
            tracing::info!(file = %path.display(), rules = count, cause, "Reloaded rules.");
        }
        Err(error) => {
            tracing::error!(file = %path.display(), cause, "Rejected the rules file; the old rules stay live:\n{error}");
        }
    }
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
