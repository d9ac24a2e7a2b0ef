//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system `protoc` is needed), generates the
//! message types and the tonic client, writes the encoded descriptor set that server reflection serves, and
//! describes the `AlertService` server by hand (tonic-build's manual builder) so that each method can have its own
//! codec: `Stream` encodes alerts straight from the engine's `Alert` (`src/stream_codec.rs`); `Evaluate` and
//! `ListRules` use prost's codec. The wire is the proto's either way.

use std::{env, fs, path::PathBuf};

use prost::Message as _;
use tonic_build::manual::{Builder, Method, Service};

const PROTO: &str = "proto/alertstream/v1/alertstream.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile([PROTO], ["proto"])?;
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    fs::write(out_dir.join("alertstream_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_server(false).compile_fds(descriptors)?;

    let prost_codec = "tonic_prost::ProstCodec";
    let method = |name: &str, route: &str, input: &str, output: &str, codec: &str| {
        Method::builder().name(name).route_name(route).input_type(input).output_type(output).codec_path(codec)
    };
    let service = Service::builder()
        .name("AlertService")
        .package("alertstream.v1")
        .method(
            method(
                "stream",
                "Stream",
                "crate::stream_codec::InboundReading",
                "alertstream_engine::Alert",
                "crate::stream_codec::StreamCodec",
            )
            .client_streaming()
            .server_streaming()
            .build(),
        )
        .method(method("evaluate", "Evaluate", "crate::pb::Reading", "crate::pb::Evaluation", prost_codec).build())
        .method(
            method(
                "list_rules",
                "ListRules",
                "crate::pb::ListRulesRequest",
                "crate::pb::ListRulesResponse",
                prost_codec,
            )
            .build(),
        )
        .build();
    Builder::new().build_client(false).build_server(true).compile(&[service]);
    Ok(())
}
