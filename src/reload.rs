//! Hot reload of the rules file: on SIGHUP, and when the file changes ([`crate::file_watch`]). A new rule set goes
//! through `alertstream_rules::load`, the same path as startup; one that fails validation is rejected with its
//! `file:line:col` errors in the log and the old rules stay live. A good one is published, as [`LiveRules`], to
//! every stream, which moves to it between readings, and its `[[sink]]` tables are applied to the [`Sinks`].

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::sync::watch;

use alertstream_engine::RuleSet;

use crate::{
    file_watch::{self, WatchError},
    sinks::Sinks,
    telemetry::Telemetry,
};

/// The live rule snapshot every stream and unary call reads; a reload sends a new one.
pub type LiveRules = watch::Receiver<Arc<RuleSet>>;

/// Reloads `path` into `live` and `sinks` on SIGHUP and whenever the file changes, until the process ends,
/// counting each reload in `telemetry`.
///
/// # Errors
/// The signal handler or the file watcher cannot be set up.
pub fn watch_rules_file(
    path: PathBuf,
    live: watch::Sender<Arc<RuleSet>>,
    sinks: Sinks,
    telemetry: Telemetry,
) -> Result<(), WatchError> {
    let file = path.clone();
    file_watch::watch_files(vec![path], move |cause| reload(&file, &live, &sinks, cause.as_str(), &telemetry))
}

/// Logs, on each SIGHUP, that there is no rules file to reload (the server runs on its embedded defaults).
///
/// # Errors
/// The signal handler cannot be installed.
pub fn explain_hangup_without_file() -> Result<(), WatchError> {
    file_watch::on_hangup(|| {
        tracing::info!("SIGHUP: no --rules file was given, so there is nothing to reload (default rules stay live).");
    })
}

/// Loads `path`, applies its sinks and publishes its rules, or logs why not; the old rules and sinks stay live on
/// any error. Either way the reload is counted in `telemetry` (before it is logged, so that a reader of the log
/// finds it counted).
pub fn reload(path: &Path, live: &watch::Sender<Arc<RuleSet>>, sinks: &Sinks, cause: &str, telemetry: &Telemetry) {
    let loaded = alertstream_rules::load(path).map_err(|e| e.to_string());
    match loaded.and_then(|file| sinks.apply(&file.sinks, &file.rules).map(|()| file)) {
        Ok(file) => {
            let (count, sink_count) = (file.rules.rules().len(), file.sinks.len());
            live.send_replace(Arc::new(file.rules));
            telemetry.rules_reloaded(true);
            tracing::info!(file = %path.display(), rules = count, sinks = sink_count, cause, "Reloaded rules.");
        }
        Err(error) => {
            telemetry.rules_reloaded(false);
            tracing::error!(file = %path.display(), cause, "Rejected the rules file; the old rules stay live:\n{error}");
        }
    }
}
