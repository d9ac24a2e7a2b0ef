//! alertstream: a real-time alerting service for streams of sensor readings.
//!
//! Data flows one way: bytes → tonic/prost → [`convert`] → `alertstream_engine` → alerts → [`convert`] → tonic.
//! The engine (`alertstream-engine`) and the rules-file loader (`alertstream-rules`) are crates of their own; this
//! one is the service around them.
//!
//! # Layout
//! - [`convert`]: wire types ([`pb`]) ↔ engine types; the only module that names both.
//! - [`service`]: the tonic `AlertService` implementation and the one error → `Status` mapping.
//! - [`stream_loop`]: one `Stream` call's loop, a small state machine over what woke it.
//! - [`stream_codec`]: the `Stream` method's codec: alerts encoded straight from the engine's `Alert`.
//! - [`clock`]: the server's time, the system's or a manual one for tests.
//! - [`http`]: the HTTP/JSON `POST /v1/evaluate` endpoint (axum), a sibling of [`service`] over the engine.
//! - [`server`]: assembles health, reflection, limits, the HTTP endpoint and graceful shutdown.
//! - [`shutdown`]: the two-phase shutdown signals (drain, then expire).
//! - [`accept`]: accepting connections, with the TLS handshake when TLS is on, for both listeners.
//! - [`connections`]: serving gRPC connections, with maximum age and grace, and the cap on connections.
//! - [`preface`]: the HTTP/2 preface a gRPC client must send in time.
//! - [`farewell`]: why the server ends a stream (shutdown, connection age), one channel per connection.
//! - [`deadline`]: the client's `grpc-timeout`, which the stream loop honours.
//! - [`rate_limit`]: `--max-readings-per-second`, one stream's token bucket on the server's clock.
//! - [`tls`]: the rustls configurations from PEM files (mutual TLS with a client CA), reloaded live.
//! - [`auth`]: bearer tokens, compared in constant time, and the gRPC check ([`http::auth`] is the HTTP one).
//! - [`file_watch`]: SIGHUP and file-change watching, for every file a running server reloads.
//! - [`reload`]: hot reload of the rules file on SIGHUP and on change, and [`reload::LiveRules`].
//! - [`rule_test`]: `alertstream test`, rule unit tests written in TOML.
//! - [`view`]: the live web view's hub: readings and alerts for the browsers watching, nothing when none does.
//! - [`telemetry`]: Prometheus metrics: the grpc-ecosystem server metrics and alertstream's own.
//! - [`logging`]: logs to stderr that never take the program down (a line that cannot be written is counted).
//! - [`config`]: the server's settings as plain data, with their defaults and the default rules.
//! - [`byte_size`]: byte sizes on the command line (`4MiB`).
//! - [`simulate`]: `alertstream simulate`, production-line sensors streaming over M connections, reconnecting.
//! - [`client`]: connecting to a server as a client, with receive windows that a slow reader cannot trip.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod accept;
pub mod auth;
pub mod byte_size;
pub mod client;
pub mod clock;
pub mod config;
pub mod connections;
pub mod convert;
pub mod deadline;
pub mod farewell;
pub mod file_watch;
pub mod http;
pub mod logging;
pub mod nats_servers;
pub mod preface;
pub mod rate_limit;
pub mod reload;
pub mod replay;
pub mod rule_test;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod simulate;
pub mod sinks;
pub mod state_store;
pub mod stream_codec;
pub mod stream_loop;
pub mod telemetry;
pub mod tls;
pub mod view;

/// The generated wire types and tonic service of `proto/alertstream/v1/alertstream.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("alertstream.v1");
    include!(concat!(env!("OUT_DIR"), "/alertstream.v1.AlertService.rs"));

    /// The encoded `FileDescriptorSet` of the alertstream proto and its imports, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/alertstream_descriptor.bin"));
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    #[test]
    fn descriptor_set_decodes_and_names_the_service() {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let file = set.file.iter().find(|f| f.package() == "alertstream.v1").expect("alertstream.v1 is in the set");
        assert_eq!(file.service[0].name(), "AlertService");
        assert!(set.file.iter().any(|f| f.name() == "google/protobuf/timestamp.proto"));
    }
}
