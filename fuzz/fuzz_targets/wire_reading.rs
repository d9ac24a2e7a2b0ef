//! Any bytes as an `alertstream.v1.Reading`: `alertstream-wire`'s decoder, which the server's `Stream` uses,
//! against prost's derived decoding of the same message. Both accept with the same fields, or both refuse with
//! the same error; past the limit of entries in `values` (an invalid reading), ours is flagged and keeps only the
//! first entries.

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// `alertstream.v1.Reading` as prost-build writes it for `proto/alertstream/v1/alertstream.proto` (written out here
/// so that this crate builds without protoc or the product).
#[derive(Clone, PartialEq, prost::Message)]
struct Reading {
    #[prost(string, tag = "1")]
    sensor_id: String,
    #[prost(map = "string, double", tag = "2")]
    values: HashMap<String, f64>,
    #[prost(message, optional, tag = "3")]
    time: Option<prost_types::Timestamp>,
    #[prost(uint64, tag = "4")]
    seq: u64,
}

fuzz_target!(|bytes: &[u8]| {
    let ours = alertstream_wire::decode_reading(&mut &bytes[..]);
    let theirs = Reading::decode(bytes);
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => {
            assert_eq!(ours.sensor_id, theirs.sensor_id);
            assert_eq!(ours.time, theirs.time);
            assert_eq!(ours.seq, theirs.seq);
            let bits = |values: Vec<(&String, &f64)>| {
                let mut bits: Vec<(String, u64)> = values.into_iter().map(|(k, v)| (k.clone(), v.to_bits())).collect();
                bits.sort();
                bits
            };
            if ours.over_limit {
                // More entries than the limit (repeats included): the reading is invalid, and our map holds the
                // names of the first entries only, each a name prost has too.
                assert!(ours.values.len() <= alertstream_engine::MAX_METRICS);
                assert!(ours.values.keys().all(|name| theirs.values.contains_key(name)));
            } else {
                assert!(theirs.values.len() <= alertstream_engine::MAX_METRICS);
                assert_eq!(bits(ours.values.iter().collect()), bits(theirs.values.iter().collect()));
            }
        }
        (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string()),
        (ours, theirs) => panic!("the decoders disagree: ours {ours:?}, prost's {theirs:?}"),
    }
});
