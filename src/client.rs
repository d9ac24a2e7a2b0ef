//! Connecting to an alertstream server as a client.
//!
//! A client that reads alerts more slowly than the server sends them (a paused consumer, a busy machine) keeps them
//! in its HTTP/2 receive windows. h2 charges every buffered DATA frame under 256 bytes against half the connection
//! window and cuts the connection (GOAWAY `too_many_data_frames`) when that runs out, and the server sends one alert
//! (about 70 bytes) per DATA frame when readings arrive one at a time: with tonic's default windows (2 MiB per
//! stream, 5 MiB per connection) a client that pauses cuts its own connection with about 13,500 alerts unread.
//! [`endpoint`] sets the client's windows by the same arithmetic as the server's ([`config::connection_window`]), so
//! a paused client is only pushed back by flow control.

use bytes::Bytes;
use tonic::transport::Endpoint;

use crate::config::{self, DEFAULT_MAX_CONCURRENT_STREAMS, STREAM_WINDOW};

/// An endpoint for `uri` (`http://host:port`) with receive windows chosen for h2's budget for small DATA frames, for
/// as many streams as a server allows on one connection by default, and TCP_NODELAY.
///
/// What the client buffers stays bounded by its stream windows: at most `streams × STREAM_WINDOW` per connection.
pub fn endpoint(uri: impl Into<Bytes>) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(uri)?
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(config::connection_window(DEFAULT_MAX_CONCURRENT_STREAMS))
        .tcp_nodelay(true))
}
