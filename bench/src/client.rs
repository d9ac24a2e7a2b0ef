//! Connecting to a server and opening one `Stream` call with the light codec ([`crate::codec`]), as a generated
//! client would call it but without its prost codec.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio_stream::Stream;
use tonic::{Request, Streaming, codegen::http::uri::PathAndQuery, transport::Channel};

use crate::{
    BoxError,
    codec::{Checker, LightCodec},
};

/// The `Stream` method's path.
const STREAM: &str = "/alertstream.v1.AlertService/Stream";

/// Opens one HTTP/2 connection to `target` with the product's client endpoint (`alertstream::client::endpoint`:
/// receive windows that a slow reader cannot trip, TCP_NODELAY).
pub async fn connect(target: SocketAddr) -> Result<Channel, BoxError> {
    Ok(alertstream::client::endpoint(format!("http://{target}"))?.connect().await?)
}

/// Calls `Stream` on `channel`, sending `readings` (each an encoded `Reading`); the alerts come back as their
/// `reading_seq`, each checked by `checker`: a failed check ends the stream with an error.
pub async fn open_stream(
    channel: Channel,
    readings: impl Stream<Item = Bytes> + Send + 'static,
    checker: Checker,
) -> Result<Streaming<u64>, BoxError> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let path = PathAndQuery::from_static(STREAM);
    Ok(grpc.streaming(Request::new(readings), path, LightCodec::new(checker)).await?.into_inner())
}
