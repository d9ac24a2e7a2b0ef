//! Idle connections: C connections, each holding one open stream on which one reading was sent and its alert
//! received, so the stream is live on the server. The runner divides the server's RSS growth by C.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::{BoxError, client, codec::Checker, readings::Encoded};

/// One held stream: dropping it closes the stream and its connection.
#[derive(Debug)]
pub struct Held {
    _readings: mpsc::Sender<Bytes>,
    _alerts: Streaming<u64>,
}

/// Opens `connections` connections to `target` with one live stream each, 64 handshakes at a time.
pub async fn hold(target: SocketAddr, connections: usize) -> Result<Vec<Held>, BoxError> {
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let gate = Arc::clone(&gate);
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            let id = format!("idle-{c}");
            let reading = Encoded::new(std::iter::once((id.as_str(), 0, 1))).get(0);
            let (tx, rx) = mpsc::channel(1);
            let checker = Checker::new(&[id.as_str()], 1);
            let mut alerts =
                client::open_stream(client::connect(target).await?, ReceiverStream::new(rx), checker).await?;
            tx.send(reading).await?;
            alerts.message().await?.ok_or("the stream ended before its alert")?;
            Ok::<_, BoxError>(Held { _readings: tx, _alerts: alerts })
        }));
    }
    let mut held = Vec::with_capacity(connections);
    for task in tasks {
        held.push(task.await??);
    }
    Ok(held)
}
