//! Limits through a real server: message size (every RPC), undecodable messages, and a client that never reads.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alertstream::{
    config::{ServeConfig, default_rules},
    pb,
};
use common::{TestServer, brief, collect, reading};
use tonic::{Code, codegen::http::uri::PathAndQuery};

/// A reading over a 64 KiB limit: one metric with a very long name would be invalid, so pad with many metrics.
fn oversize_reading(seq: u64) -> pb::Reading {
    let mut r = reading("big", seq, &[]);
    for i in 0..5_000 {
        r.values.insert(format!("metric_{i:05}"), 1.0);
    }
    r
}

fn small_limit() -> ServeConfig {
    ServeConfig { max_message_size: 64 << 10, ..ServeConfig::default() }
}

#[tokio::test]
async fn an_oversize_message_ends_the_stream_resource_exhausted_after_earlier_alerts() {
    let server = TestServer::with(default_rules(), small_limit()).await;
    let mut client = server.client().await;
    let readings = vec![
        reading("a", 1, &[("temperature", 5.0)]),
        reading("a", 2, &[("temperature", 15.0)]),
        oversize_reading(3),
        reading("a", 4, &[("temperature", 5.0)]),
    ];
    let response = client.stream(tokio_stream::iter(readings)).await.unwrap();
    let (alerts, status) = collect(response.into_inner()).await;
    assert_eq!(alerts.iter().map(brief).collect::<Vec<_>>(), ["a 1 temp_too_low FIRING", "a 2 temp_too_low RESOLVED"]);
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The server still serves, on the same connection and on a new one.
    let evaluation = client.evaluate(reading("a", 5, &[("temperature", 5.0)])).await.unwrap().into_inner();
    assert_eq!(evaluation.status, "temp too low");
    let evaluation = server.client().await.evaluate(reading("a", 6, &[("pH", 6.0)])).await.unwrap().into_inner();
    assert_eq!(evaluation.status, "pH too high");
}

#[tokio::test]
async fn an_oversize_unary_request_is_resource_exhausted() {
    let server = TestServer::with(default_rules(), small_limit()).await;
    let mut client = server.client().await;
    let status = client.evaluate(oversize_reading(1)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
}

#[tokio::test]
async fn a_message_under_the_limit_is_taken_and_judged_on_its_content() {
    let server = TestServer::with(default_rules(), ServeConfig::default()).await;
    let mut client = server.client().await;
    // About 3 MiB: under the 4 MiB default, so the transport takes it. Its 100,001 metrics are over the limit of
    // metrics per reading, so it is answered as an invalid reading, not refused as too large.
    let mut r = reading("big", 1, &[("temperature", 5.0)]);
    for i in 0..100_000 {
        r.values.insert(format!("metric_{i:06}"), 1.0);
    }
    let status = client.evaluate(r).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("values has more than 1024 metrics"), "{status:?}");
    // The most a valid reading can carry (1,024 metrics of 128-byte names) is taken and evaluated.
    let mut r = reading("big", 2, &[("temperature", 5.0)]);
    for i in 1..alertstream_engine::MAX_METRICS {
        r.values.insert(format!("{i:0128}"), 1.0);
    }
    let evaluation = client.evaluate(r).await.unwrap().into_inner();
    assert_eq!(evaluation.status, "temp too low");
}

/// A message that is not a `Reading`: field 2 (`values`, a map) sent as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct NotAReading {
    #[prost(string, tag = "1")]
    sensor_id: String,
    #[prost(uint64, tag = "2")]
    values: u64,
}

/// Streams `messages`, of a type other than `Reading`, to `Stream`: every alert that came back, and how it ended.
async fn stream_as<M>(server: &TestServer, messages: Vec<M>) -> (Vec<pb::Alert>, Result<(), tonic::Status>)
where
    M: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let response = grpc
        .streaming::<_, _, pb::Alert, _>(
            tonic::Request::new(tokio_stream::iter(messages)),
            PathAndQuery::from_static("/alertstream.v1.AlertService/Stream"),
            tonic_prost::ProstCodec::<M, pb::Alert>::default(),
        )
        .await
        .unwrap();
    collect(response.into_inner()).await
}

#[tokio::test]
async fn a_message_that_does_not_decode_ends_the_stream_internal() {
    let server = TestServer::start().await;
    let good = NotAReading { sensor_id: "a".into(), values: 0 };
    let bad = NotAReading { sensor_id: "a".into(), values: 7 };
    // A default `NotAReading` encodes as a valid (empty-values, hence invalid_reading) `Reading`; then the bad one.
    let (alerts, status) = stream_as(&server, vec![good, bad]).await;
    assert_eq!(alerts.iter().map(brief).collect::<Vec<_>>(), ["a 0 invalid_reading FIRING"]);
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(status.message().contains("wire type"), "the decode error is the message: {status:?}");
}

/// One `values` entry as the map's wire form has it (a message of key 1 and value 2).
#[derive(Clone, PartialEq, prost::Message)]
struct ValueEntry {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(double, tag = "2")]
    value: f64,
}

/// A `Reading` whose `values` are a list of entries, so that a name can repeat on the wire (a map cannot hold that).
#[derive(Clone, PartialEq, prost::Message)]
struct ReadingOfEntries {
    #[prost(string, tag = "1")]
    sensor_id: String,
    #[prost(message, repeated, tag = "2")]
    values: Vec<ValueEntry>,
    #[prost(uint64, tag = "4")]
    seq: u64,
}

#[tokio::test]
async fn one_name_repeated_past_the_limit_of_metrics_is_an_invalid_reading() {
    let server = TestServer::start().await;
    let entries =
        |count: usize, temperature: f64| vec![ValueEntry { name: "temperature".into(), value: temperature }; count];
    let limit = alertstream_engine::MAX_METRICS;
    // Repeats are entries: past the limit the reading is invalid even though its map would hold one name, so a
    // flood of one colliding name is not hashed again and again. At the limit, the last entry wins, as in prost.
    let readings = vec![
        ReadingOfEntries { sensor_id: "a".into(), values: entries(limit, 5.0), seq: 1 },
        ReadingOfEntries { sensor_id: "a".into(), values: entries(50 * limit, 20.0), seq: 2 },
        ReadingOfEntries { sensor_id: "a".into(), values: entries(1, 20.0), seq: 3 },
    ];
    let (alerts, status) = stream_as(&server, readings).await;
    status.unwrap();
    let got: Vec<String> = alerts.iter().map(|a| format!("{} {}", brief(a), a.message)).collect();
    assert_eq!(
        got,
        [
            "a 1 temp_too_low FIRING temp too low",
            "a 2 invalid_reading FIRING invalid reading: values has more than 1024 metrics, the limit",
            "a 3 temp_too_low RESOLVED resolved: temp too low",
        ]
    );
}

#[tokio::test]
async fn a_client_that_never_reads_is_pushed_back() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // An endless stream of readings that each yield an alert, counting how many the transport pulled.
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&pulled);
    let endless = tokio_stream::iter((1..).map(move |seq: u64| {
        counter.fetch_add(1, Ordering::Relaxed);
        reading("s", seq, &[("temperature", if seq % 2 == 1 { 5.0 } else { 15.0 }), ("pad", 1.0)])
    }));
    // The response is held and never read.
    let _response = client.stream(endless).await.unwrap();
    // Wait until the transport stops pulling: flow control has pushed back through the server to this client.
    let mut last = 0;
    let mut stable_rounds = 0;
    for _ in 0..200 {
        // A real socket: only time tells that the transport has stopped pulling (bounded polls, no span asserted).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = pulled.load(Ordering::Relaxed);
        stable_rounds = if now == last { stable_rounds + 1 } else { 0 };
        last = now;
        if stable_rounds == 10 {
            break;
        }
    }
    assert_eq!(stable_rounds, 10, "the client kept sending: {last} readings and counting");
    // What is in flight is bounded by HTTP/2 windows (a few MiB at most), not by how long the client sends.
    // Each reading is ~40 bytes on the wire and each alert ~80: a few hundred thousand would mean no pushback.
    assert!(last < 200_000, "{last} readings were taken in before pushback");
}
