//! Compiles the one proto (`../proto`) with protox, as the product does, so the load generator and the baseline
//! speak the contract without depending on the product's library: they measure the server from outside.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto");
    let descriptors = protox::compile(["alertstream/v1/alertstream.proto"], ["../proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
