//! The live web view: the page at `/` (HTML, CSS and JavaScript embedded in the binary: no build step, no CDN) and
//! its server-sent events at `/events`, each event one JSON object from [`crate::view::ViewEvent`].
//!
//! Each page gets a small task that owns its subscription and feeds a queue of [`BROWSER_QUEUE`] events, which the
//! page's response reads: its snapshot first, then live events. The task never waits for the browser: when the
//! queue is full (a browser that stopped reading), or the page fell behind the shared channel, the subscription is
//! dropped, at once, so the streams stop publishing for it; the page gets what was queued, its response ends, and
//! its EventSource reconnects from a fresh snapshot. Every event stream ends when the server stops serving HTTP.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::State,
    response::{
        Html,
        sse::{Event, KeepAlive, Sse},
    },
};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;

use super::Endpoint;
use crate::view::Watcher;

/// The page.
const PAGE: &str = include_str!("view.html");

/// How often an idle event stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Events queued for one browser before it counts as not reading.
pub(super) const BROWSER_QUEUE: usize = 1024;

pub(super) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub(super) async fn events(State(endpoint): State<Endpoint>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let watcher = endpoint.view.watch();
    let (queue, mut queued) = mpsc::channel(BROWSER_QUEUE);
    tokio::spawn(forward(watcher, queue, endpoint.closing.clone()));
    let stream = async_stream::stream! {
        // Says the subscription is in place: what happens from here on reaches the page.
        yield Ok(Event::default().event("ready").data("{}"));
        while let Some(json) = queued.recv().await {
            yield Ok(Event::default().data(&*json));
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// Moves one page's events from its subscription to its queue, the snapshot before live events, until the page
/// goes away, falls behind, or the server stops.
async fn forward(mut watcher: Watcher, queue: mpsc::Sender<Arc<str>>, closing: CancellationToken) {
    loop {
        let json = tokio::select! {
            biased;
            () = closing.cancelled() => return,
            () = queue.closed() => return,
            Some(json) = watcher.snapshot.recv() => json,
            event = watcher.events.recv() => match event {
                Ok(json) => json,
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "A live view fell behind and was dropped; it reconnects from a snapshot.");
                    return;
                }
                Err(RecvError::Closed) => return,
            },
        };
        if queue.try_send(json).is_err() {
            tracing::info!("A live view stopped reading and was dropped; it reconnects from a snapshot.");
            return;
        }
    }
}
