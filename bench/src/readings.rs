//! The readings the load generator sends, encoded to protobuf before any clock starts, so that sending one costs
//! the client a copy of its bytes and nothing else.
//!
//! Reading `round` of a sensor has temperature 5 when `round` is even and 15 when odd: with the default rule
//! `temp_too_low` (`temperature < 10`) each reading fires or resolves it, so every reading yields exactly one
//! alert on alertstream, as on the baseline, which answers every reading.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::pb;

/// The one metric every reading carries.
pub const METRIC: &str = "temperature";

/// The temperature of a sensor's reading `round`: 5, 15, 5, … around the default threshold of 10.
pub fn temperature(round: u64) -> f64 {
    if round.is_multiple_of(2) { 5.0 } else { 15.0 }
}

/// The reading's time: a fixed epoch plus `seq` seconds, so alerts carry the reading's time, not the server's.
fn time(seq: u64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: 1_700_000_000 + seq as i64, nanos: 0 }
}

/// Reading `round` of `sensor`, numbered `seq`, as the generated type: the reference [`encode_reading`] matches.
pub fn reading(sensor: &str, round: u64, seq: u64) -> pb::Reading {
    pb::Reading {
        sensor_id: sensor.to_owned(),
        values: HashMap::from([(METRIC.to_owned(), temperature(round))]),
        time: Some(time(seq)),
        seq,
    }
}

/// Appends the protobuf encoding of [`reading`]`(sensor, round, seq)` to `buf`, byte for byte what prost writes,
/// without building the message (no map, no strings).
pub fn encode_reading(sensor: &str, round: u64, seq: u64, buf: &mut impl bytes::BufMut) {
    // 1: sensor_id.
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(sensor.len() as u64, buf);
    buf.put_slice(sensor.as_bytes());
    // 2: values, one map entry {1: key, 2: value}.
    let entry_len = 1 + encoded_len_varint(METRIC.len() as u64) + METRIC.len() + 1 + 8;
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(entry_len as u64, buf);
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(METRIC.len() as u64, buf);
    buf.put_slice(METRIC.as_bytes());
    prost::encoding::double::encode(2, &temperature(round), buf);
    // 3: time; 4: seq (omitted when 0, as proto3 does).
    prost::encoding::message::encode(3, &time(seq), buf);
    if seq != 0 {
        prost::encoding::uint64::encode(4, &seq, buf);
    }
}

/// Encoded readings in one buffer, each sent as a [`Bytes`] slice of it (no copy, no allocation).
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    bytes: Bytes,
    /// The end offset of each reading in `bytes`.
    ends: Vec<usize>,
}

impl Encoded {
    /// Encodes `(sensor, round, seq)` for each item of `readings`.
    pub fn new<'a>(readings: impl Iterator<Item = (&'a str, u64, u64)>) -> Self {
        let expected = readings.size_hint().0;
        let mut ends = Vec::with_capacity(expected);
        let mut buf = BytesMut::with_capacity(expected * 56);
        for (sensor, round, seq) in readings {
            encode_reading(sensor, round, seq, &mut buf);
            ends.push(buf.len());
        }
        Self { bytes: buf.freeze(), ends }
    }

    /// How many readings there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The encoding of reading `i`.
    ///
    /// # Panics
    ///
    /// When `i` is not below [`len`](Self::len).
    pub fn get(&self, i: usize) -> Bytes {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.bytes.slice(start..self.ends[i])
    }

    /// Every reading's encoding, in order.
    pub fn into_slices(self) -> impl Iterator<Item = Bytes> + Send + 'static {
        (0..self.len()).map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_hand_encoding_is_prosts() {
        for (sensor, round, seq) in [("s0-0", 0, 1), ("a-much-longer-sensor-id", 7, 300_000), ("x", 2, 0)] {
            let mut mine = Vec::new();
            encode_reading(sensor, round, seq, &mut mine);
            assert_eq!(mine, reading(sensor, round, seq).encode_to_vec(), "{sensor} {round} {seq}");
        }
    }

    #[test]
    fn each_slice_is_one_reading() {
        let ids = ["a", "bb"];
        let encoded = Encoded::new((0..5u64).map(|k| (ids[k as usize % 2], k / 2, k + 1)));
        assert_eq!(encoded.len(), 5);
        for (k, bytes) in encoded.into_slices().enumerate() {
            let k = k as u64;
            assert_eq!(pb::Reading::decode(bytes).unwrap(), reading(ids[k as usize % 2], k / 2, k + 1));
        }
    }
}
