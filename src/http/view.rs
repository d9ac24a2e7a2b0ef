//! The live web view: the page at `/` (HTML, CSS and JavaScript embedded in the binary: no build step, no CDN) and
//! its server-sent events at `/events`, each event one JSON object from [`crate::view::ViewEvent`].
//!
//! A page that opens subscribes and asks every stream for a snapshot, then gets readings and alerts as they
//! happen. A browser that falls too far behind is dropped rather than waited for; its EventSource reconnects and
//! starts again from a snapshot.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    response::{
        Html,
        sse::{Event, KeepAlive, Sse},
    },
};
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;

use super::Endpoint;

/// The page.
const PAGE: &str = include_str!("view.html");

/// How often an idle event stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub(super) async fn events(State(endpoint): State<Endpoint>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut watcher = endpoint.view.watch();
    let stream = async_stream::stream! {
        // Says the subscription is in place: what happens from here on reaches the page.
        yield Ok(Event::default().event("ready").data("{}"));
        loop {
            match watcher.events.recv().await {
                Ok(json) => yield Ok(Event::default().data(&*json)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "A live view fell behind and was dropped; it reconnects from a snapshot.");
                    break;
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
