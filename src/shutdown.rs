//! The two shutdown signals: *drain* (stop accepting, health NOT_SERVING, open streams go on) on SIGTERM or SIGINT,
//! and *expire* (open streams end UNAVAILABLE), which [`crate::server`] signals when the grace period runs out.

use tokio_util::sync::CancellationToken;

/// A drain token that is cancelled by the first SIGTERM or SIGINT.
///
/// # Errors
/// The signal handlers could not be installed.
pub fn drain_on_signal() -> std::io::Result<CancellationToken> {
    let drain = CancellationToken::new();
    // Install the handlers before returning, so a signal that arrives at once is not lost.
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let token = drain.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "Shutdown signal received: draining.");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    {
        let token = drain.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!(signal = "ctrl-c", "Shutdown signal received: draining.");
                token.cancel();
            }
        });
    }
    Ok(drain)
}
