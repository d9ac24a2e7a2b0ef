//! alertstream's benchmark harness: a load generator that measures the `alertstream` binary from outside over its
//! gRPC contract, and the bare-tonic baseline server it is measured against. Not shipped (`publish = false`).
//!
//! The load generator is built to cost less CPU per reading than the servers it measures, so that a faster server
//! shows as faster: readings are encoded before the clock starts ([`readings`]) and alerts are checked without
//! being decoded ([`codec`], used through [`client`]). Each scenario has its module: [`throughput`], [`latency`]
//! and [`idle`] drive one server at an address; [`server`] starts a server process and [`cpu`] reads its CPU time
//! and memory from /proc; [`compare`] runs every scenario against alertstream and the baseline, interleaved, and
//! prints the tables (with [`counterparts`], the sinks' real counterparts where the machine has them); [`soak`] runs
//! a long mixed load against alertstream and samples what it holds; [`state`] measures what durable sensor state
//! costs.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod codec;
pub mod compare;
pub mod counterparts;
pub mod cpu;
pub mod idle;
pub mod latency;
pub mod nab;
pub mod readings;
pub mod server;
pub mod soak;
pub mod state;
pub mod throughput;

/// The types and service stubs generated from `proto/alertstream/v1/alertstream.proto` (by `build.rs`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("alertstream.v1");
}

/// Any error, as the harness reports them: it fails the run with the message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
