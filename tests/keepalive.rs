//! HTTP/2 keepalive finds a peer that vanished without closing: its connection is closed and its streams freed.

mod common;

use std::time::Duration;

use alertstream::config::{ServeConfig, default_rules};
use common::{TestServer, brief, reading};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// Forwards bytes both ways until `frozen` is cancelled; then the client side gets nothing more, and whatever the
/// server sends (its keepalive pings) is read and dropped unanswered: the peer has vanished, the socket is open.
/// Returns when the server closes its side.
async fn freezable_proxy(client: TcpStream, server: TcpStream, frozen: CancellationToken) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Client → server, until frozen.
    let frozen_up = frozen.clone();
    let upstream = tokio::spawn(async move {
        let mut buf = vec![0; 16 << 10];
        loop {
            tokio::select! {
                // Hold both halves open without a word: a FIN would tell the server the peer is gone.
                () = frozen_up.cancelled() => std::future::pending::<()>().await,
                n = client_read.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => if server_write.write_all(&buf[..n]).await.is_err() { return },
                },
            }
        }
    });
    // Server → client while not frozen; after, read and drop until the server closes.
    let mut buf = vec![0; 16 << 10];
    loop {
        match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => {
                upstream.abort();
                return;
            }
            Ok(n) if !frozen.is_cancelled() => {
                let _ = client_write.write_all(&buf[..n]).await;
            }
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_vanished_peer_is_found_by_keepalive_and_its_stream_freed() {
    let config = ServeConfig {
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(300),
        ..ServeConfig::default()
    };
    let mut server = TestServer::with(default_rules(), config).await;
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let frozen = CancellationToken::new();
    let freeze = frozen.clone();
    let grpc_addr = server.grpc_addr;
    let proxied = tokio::spawn(async move {
        let (client, _) = proxy.accept().await.unwrap();
        let upstream = TcpStream::connect(grpc_addr).await.unwrap();
        freezable_proxy(client, upstream, frozen).await;
    });

    let channel =
        tonic::transport::Channel::from_shared(format!("http://{proxy_addr}")).unwrap().connect().await.unwrap();
    let mut client = alertstream::pb::alert_service_client::AlertServiceClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut alerts = client.stream(ReceiverStream::new(rx)).await.unwrap().into_inner();
    tx.send(reading("s", 1, &[("temperature", 5.0)])).await.unwrap();
    assert_eq!(brief(&alerts.message().await.unwrap().unwrap()), "s 1 temp_too_low FIRING");

    // The peer vanishes: nothing more comes from it, not even ping acknowledgements.
    freeze.cancel();
    tokio::time::timeout(Duration::from_secs(60), proxied)
        .await
        .expect("the server closed the silent connection")
        .unwrap();
    // Its stream is gone: shutdown does not wait on it (the grace period is 300 s).
    server.drain.cancel();
    tokio::time::timeout(Duration::from_secs(60), &mut server.handle)
        .await
        .expect("shutdown did not wait on the dead peer's stream")
        .unwrap()
        .unwrap();
    drop((tx, alerts));
}
