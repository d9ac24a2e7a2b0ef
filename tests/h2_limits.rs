//! The HTTP/2 limits the server sets on purpose rather than inherit from tonic: concurrent streams per connection
//! (tonic's default is unlimited), the header list size, streams reset by the client before they are accepted (rapid
//! reset) and streams the server must reset for a client's protocol errors (tonic's default is unlimited).

mod common;

use std::time::Duration;

use alertstream::config::{MAX_LOCAL_ERROR_RESETS, MAX_PENDING_ACCEPT_RESETS, ServeConfig, default_rules};
use bytes::Bytes;
use common::{TestServer, reading};
use tokio::net::TcpStream;

/// Opens a raw HTTP/2 connection, makes one health check over it (so the server's SETTINGS have arrived), and
/// returns how many concurrent streams the server allows on it.
async fn advertised_stream_limit(server: &TestServer) -> usize {
    let tcp = TcpStream::connect(server.grpc_addr).await.unwrap();
    let (client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let check = async move {
        let mut client = client.ready().await?;
        let request = http::Request::post("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = client.send_request(request, false)?;
        // An empty HealthCheckRequest: no compression flag, zero length.
        body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true)?;
        response.await
    };
    tokio::pin!(check);
    let response = tokio::select! {
        response = &mut check => response.unwrap(),
        ended = &mut connection => panic!("the connection ended first: {ended:?}"),
    };
    assert_eq!(response.status(), 200);
    connection.max_concurrent_send_streams()
}

#[tokio::test]
async fn a_connection_may_open_200_streams_at_once_by_default_or_as_configured() {
    let server = TestServer::start().await;
    assert_eq!(advertised_stream_limit(&server).await, 200);
    let config = ServeConfig { max_concurrent_streams: 7, ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    assert_eq!(advertised_stream_limit(&server).await, 7);
}

#[tokio::test]
async fn a_request_with_headers_over_16_kib_is_refused_and_the_connection_goes_on() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let with_header = |bytes: usize| {
        let mut request = tonic::Request::new(reading("s", 1, &[("temperature", 8.0)]));
        request.metadata_mut().insert("x-padding", "x".repeat(bytes).parse().unwrap());
        request
    };
    let under = client.evaluate(with_header(15 << 10)).await.unwrap().into_inner();
    assert_eq!(under.status, "temp too low");
    let over = client.evaluate(with_header(17 << 10)).await.unwrap_err();
    // hyper answers 431 Request Header Fields Too Large, which tonic reports as UNKNOWN with the HTTP status.
    assert!(over.message().contains("431"), "{over:?}");
    // The refusal is the stream's, not the connection's: the same client goes on.
    let after = tokio::time::timeout(Duration::from_secs(30), client.evaluate(reading("s", 2, &[("pH", 6.0)])))
        .await
        .expect("bounded")
        .unwrap()
        .into_inner();
    assert_eq!(after.status, "pH too high");
}

/// A Stream request's headers, as a gRPC client sends them.
fn stream_request() -> http::Request<()> {
    http::Request::post("/alertstream.v1.AlertService/Stream")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn a_rapid_reset_loop_gets_goaway_and_other_connections_go_on() {
    let server = TestServer::start().await;
    let mut bystander = server.client().await;
    let tcp = TcpStream::connect(server.grpc_addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    // HEADERS then RST_STREAM, over and over, without waiting for anything (CVE-2023-44487).
    let mut client = client.ready().await.unwrap();
    let mut sent = 0;
    for _ in 0..10_000 {
        let Ok((_response, mut body)) = client.send_request(stream_request(), false) else { break };
        body.send_reset(h2::Reason::CANCEL);
        sent += 1;
        client = match client.ready().await {
            Ok(client) => client,
            Err(_) => break,
        };
    }
    let ended = tokio::time::timeout(Duration::from_secs(30), connection).await.expect("the server ends it").unwrap();
    let error = ended.expect_err("the connection ends with an error");
    assert_eq!(error.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{error:?} after {sent} resets");
    assert!(error.is_go_away() && error.is_remote(), "{error:?}");
    assert!(sent > MAX_PENDING_ACCEPT_RESETS, "GOAWAY after {sent} resets");
    // Another connection is unaffected.
    let evaluation = bystander.evaluate(reading("s", 1, &[("temperature", 8.0)])).await.unwrap().into_inner();
    assert_eq!(evaluation.status, "temp too low");
}

#[tokio::test]
async fn streams_the_server_must_reset_for_protocol_errors_are_capped_per_connection() {
    let server = TestServer::start().await;
    let tcp = TcpStream::connect(server.grpc_addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    // Each request announces 100 bytes and sends 5: the server resets the stream with PROTOCOL_ERROR.
    let mut client = client.ready().await.unwrap();
    let mut sent = 0;
    for _ in 0..5_000 {
        let mut request = stream_request();
        request.headers_mut().insert("content-length", http::HeaderValue::from_static("100"));
        let Ok((response, mut body)) = client.send_request(request, false) else { break };
        if body.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), true).is_err() {
            break;
        }
        sent += 1;
        let _ = response.await;
        client = match client.ready().await {
            Ok(client) => client,
            Err(_) => break,
        };
    }
    let ended = tokio::time::timeout(Duration::from_secs(30), connection).await.expect("the server ends it").unwrap();
    let error = ended.expect_err("the connection ends with an error");
    assert_eq!(error.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{error:?} after {sent} requests");
    // The request that made the 1,025th reset is the one the server answered with GOAWAY.
    assert_eq!(sent, MAX_LOCAL_ERROR_RESETS + 1);
}
