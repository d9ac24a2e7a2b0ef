//! The `Stream` method's codec. Readings decode as prost decodes them (into `pb::Reading`, errors INTERNAL with
//! prost's message, as tonic's own codec does). Alerts encode straight from the engine's [`Alert`], field by field
//! as prost encodes the `pb::Alert` that [`crate::convert::alert_to_pb`] would make of it, without making it: no
//! copy of the rule name and message into new strings, no second map, no wire message to drop. The bytes are the
//! contract's (`tests` below check them against prost on many alerts).

use alertstream_engine::Alert;
use bytes::BufMut;
use prost::encoding::{self, WireType};
use tonic::{
    Status,
    codec::{Codec, EncodeBuf, Encoder},
};
use tonic_prost::ProstDecoder;

use crate::{
    convert::{alert_state_to_pb, severity_to_pb},
    pb,
};

/// The codec of `AlertService.Stream`: `pb::Reading` in, engine [`Alert`]s out.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamCodec;

impl Codec for StreamCodec {
    type Encode = Alert;
    type Decode = pb::Reading;
    type Encoder = AlertEncoder;
    type Decoder = ProstDecoder<pb::Reading>;

    fn encoder(&mut self) -> AlertEncoder {
        AlertEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<pb::Reading> {
        ProstDecoder::default()
    }
}

/// Encodes an engine [`Alert`] as an `alertstream.v1.Alert`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertEncoder;

impl Encoder for AlertEncoder {
    type Item = Alert;
    type Error = Status;

    fn encode(&mut self, alert: Alert, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        encode_alert(&alert, buf);
        Ok(())
    }
}

/// Writes `alert` as prost writes the equivalent `pb::Alert`: fields in number order, proto3 defaults omitted,
/// the time always present, map entries with their default key or value omitted.
pub fn encode_alert(alert: &Alert, buf: &mut impl BufMut) {
    put_str(1, &alert.sensor_id, buf);
    put_str(2, &alert.rule, buf);
    put_enum(3, alert_state_to_pb(alert.state) as i32, buf);
    put_enum(4, severity_to_pb(alert.severity) as i32, buf);
    put_str(5, &alert.message, buf);
    if alert.reading_seq != 0 {
        encoding::uint64::encode(6, &alert.reading_seq, buf);
    }
    encoding::message::encode(7, &prost_types::Timestamp::from(alert.time), buf);
    for (name, value) in &alert.values {
        let (skip_name, skip_value) = (name.is_empty(), *value == 0.0);
        let len = if skip_name { 0 } else { encoding::string::encoded_len(1, name) }
            + if skip_value { 0 } else { encoding::double::encoded_len(2, value) };
        encoding::encode_key(8, WireType::LengthDelimited, buf);
        encoding::encode_varint(len as u64, buf);
        if !skip_name {
            encoding::string::encode(1, name, buf);
        }
        if !skip_value {
            encoding::double::encode(2, value, buf);
        }
    }
}

/// A proto3 `string` field, omitted when empty.
fn put_str(tag: u32, value: &str, buf: &mut impl BufMut) {
    if !value.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(value.len() as u64, buf);
        buf.put_slice(value.as_bytes());
    }
}

/// A proto3 enum field, omitted when 0.
fn put_enum(tag: u32, value: i32, buf: &mut impl BufMut) {
    if value != 0 {
        encoding::int32::encode(tag, &value, buf);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        sync::Arc,
        time::{Duration, SystemTime},
    };

    use alertstream_engine::{AlertState, Severity};
    use prost::Message as _;

    use super::*;

    /// What prost makes of `alert`: the reference encoding.
    fn prost_bytes(alert: &Alert) -> Vec<u8> {
        crate::convert::alert_to_pb(alert.clone()).encode_to_vec()
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn text(&mut self) -> String {
            let len = (self.next() % 4) as usize * (self.next() % 40) as usize;
            (0..len).map(|i| ['a', 'é', '-', '/', '7', '✓'][(self.next() as usize + i) % 6]).collect()
        }

        fn value(&mut self) -> f64 {
            match self.next() % 6 {
                0 => 0.0,
                1 => -0.0,
                2 => f64::MAX,
                3 => f64::MIN_POSITIVE,
                _ => (self.next() % 100_000) as f64 / 7.0 - 5_000.0,
            }
        }
    }

    fn random_alert(rng: &mut Rng) -> Alert {
        let time = match rng.next() % 4 {
            0 => SystemTime::UNIX_EPOCH,
            1 => SystemTime::UNIX_EPOCH - Duration::new(rng.next() % 1_000_000, (rng.next() % 1_000_000_000) as u32),
            _ => {
                SystemTime::UNIX_EPOCH + Duration::new(rng.next() % 10_000_000_000, (rng.next() % 1_000_000_000) as u32)
            }
        };
        let values: HashMap<String, f64> = (0..rng.next() % 4).map(|_| (rng.text(), rng.value())).collect();
        Alert {
            sensor_id: rng.text(),
            rule: Arc::from(rng.text()),
            state: if rng.next().is_multiple_of(2) { AlertState::Firing } else { AlertState::Resolved },
            severity: [Severity::Info, Severity::Warning, Severity::Critical][(rng.next() % 3) as usize],
            message: Arc::from(rng.text()),
            reading_seq: [0, 1, 300, u64::MAX, rng.next()][(rng.next() % 5) as usize],
            time,
            values,
        }
    }

    #[test]
    fn alerts_encode_as_prost_encodes_them() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5_000 {
            let alert = random_alert(&mut rng);
            let mut ours = Vec::new();
            encode_alert(&alert, &mut ours);
            // Decoded by prost, the alert is the one `alert_to_pb` makes: every field, whatever the map's order.
            let decoded = pb::Alert::decode(ours.as_slice()).unwrap();
            assert_eq!(decoded, crate::convert::alert_to_pb(alert.clone()), "{alert:?}");
            // With at most one map entry there is one order: the bytes are prost's, to the byte.
            if alert.values.len() <= 1 {
                assert_eq!(ours, prost_bytes(&alert), "{alert:?}");
            } else {
                assert_eq!(ours.len(), prost_bytes(&alert).len(), "{alert:?}");
            }
        }
    }
}
