//! The HTTP/2 limits the server sets on purpose rather than inherit from tonic: concurrent streams per connection
//! (tonic's default is unlimited) and the header list size.

mod common;

use std::time::Duration;

use alertstream::config::{ServeConfig, default_rules};
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
