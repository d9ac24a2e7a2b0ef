//! alertstream: a real-time alerting service for streams of sensor readings.
//!
//! Data flows one way: bytes → tonic/prost → [`convert`] → [`engine`] → alerts → [`convert`] → tonic.
//!
//! # Layout
//! - [`engine`]: the rule engine. Parses and compiles conditions, keeps per-sensor state, turns readings into
//!   alerts. Pure and synchronous: it knows nothing of gRPC, tokio or the clock.
//! - [`rule_test`]: `alertstream test`, rule unit tests written in TOML.
//! - [`rules`]: the TOML rules file → [`engine::RuleSet`], with every error as `file:line:col: message`.
//! - [`convert`]: wire types ([`pb`]) ↔ engine types; the only module that names both.
//! - [`service`]: the tonic `AlertService` implementation and the one error → `Status` mapping.
//! - [`http`]: the HTTP/JSON `POST /v1/evaluate` endpoint (axum).
//! - [`server`]: assembles health, reflection, limits, the HTTP endpoint and graceful shutdown.
//! - [`shutdown`]: the two-phase shutdown signals (drain, then expire).
//! - [`reload`]: hot reload of the rules file on SIGHUP and on change.
//! - [`config`]: the server's settings as plain data, with their defaults.
//! - [`units`]: parsing of durations (`30s`) and byte sizes (`4MiB`) shared by the CLI and the rules file.

pub mod config;
pub mod convert;
pub mod engine;
pub mod http;
pub mod reload;
pub mod rule_test;
pub mod rules;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod units;

/// The generated wire types and tonic service of `proto/alertstream/v1/alertstream.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("alertstream.v1");

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
