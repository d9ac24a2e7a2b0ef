//! The `Stream` method's codec. Readings decode field by field as prost decodes a `pb::Reading` (prost's own
//! decoding of each field, the same errors, INTERNAL with prost's message as tonic's codec makes it), but into an
//! [`InboundReading`] whose values are already the engine's map (`alertstream-wire`, a crate of its own so that it
//! can be fuzzed without tonic), so nothing is hashed twice.
//! Alerts encode straight from the engine's [`Alert`], field by field as prost encodes the `pb::Alert` that
//! [`crate::convert::alert_to_pb`] would make of it, without making it: no copy of the rule name and message into
//! new strings, no second map, no wire message to drop. Both directions are checked against prost below.

use alertstream_engine::Alert;
pub use alertstream_wire::{InboundReading, decode_reading};
use bytes::{Buf, BufMut};
use prost::encoding::{self, WireType};
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use crate::convert::{alert_state_to_pb, severity_to_pb};

/// The codec of `AlertService.Stream`: [`InboundReading`]s in, engine [`Alert`]s out.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamCodec;

impl Codec for StreamCodec {
    type Encode = Alert;
    type Decode = InboundReading;
    type Encoder = AlertEncoder;
    type Decoder = ReadingDecoder;

    fn encoder(&mut self) -> AlertEncoder {
        AlertEncoder::default()
    }

    fn decoder(&mut self) -> ReadingDecoder {
        ReadingDecoder
    }
}

/// The capacity each stream's decode and encode buffers start with: room for a dozen readings or half a dozen
/// alerts. tonic's default is 8 KiB each, most of which an idle stream never uses (they measured about 6 KiB of
/// resident memory per idle connection). The decode buffer grows to the largest message received and keeps that.
/// The encode buffer hands each batch of alerts to HTTP/2; while HTTP/2 still holds the last batch, the next starts
/// in a new allocation of at least this size, so under load it allocates more often than with 8 KiB (counted: no
/// measurable cost, see docs/PERFORMANCE.md).
pub const BUFFER_SIZE: usize = 1 << 10;
/// How many bytes of alerts tonic gathers before it hands them to HTTP/2 as one frame: tonic's default.
pub const YIELD_THRESHOLD: usize = 32 << 10;

/// Decodes an [`InboundReading`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadingDecoder;

impl Decoder for ReadingDecoder {
    type Item = InboundReading;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
    }

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<InboundReading>, Status> {
        // tonic hands over one message in one contiguous buffer: decoded from a plain slice, each of the reading's
        // dozen or so field reads moves a pointer instead of advancing the `BytesMut` behind the `DecodeBuf`.
        let len = buf.remaining();
        let whole = buf.chunk();
        let decoded = if whole.len() == len {
            let decoded = decode_reading(&mut &whole[..]);
            buf.advance(len);
            decoded
        } else {
            decode_reading(buf)
        };
        // As tonic's prost codec maps a decode error.
        decoded.map(Some).map_err(|error| Status::internal(error.to_string()))
    }
}

/// The most an encoder keeps of its scratch buffer between alerts (an alert of the default rules takes about 150
/// bytes): an alert of many metrics does not pin its size in the stream.
const SCRATCH_KEPT: usize = BUFFER_SIZE;

/// Encodes an engine [`Alert`] as an `alertstream.v1.Alert`.
#[derive(Debug, Clone, Default)]
pub struct AlertEncoder {
    /// Where an alert is written before it goes into tonic's buffer in one copy: a `Vec` takes a byte in a push,
    /// where tonic's `EncodeBuf` takes each of the varints' bytes through a `put_slice` of its own.
    scratch: Vec<u8>,
}

impl Encoder for AlertEncoder {
    type Item = Alert;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
    }

    fn encode(&mut self, alert: Alert, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        self.put(&alert, buf);
        Ok(())
    }
}

impl AlertEncoder {
    /// Writes `alert` to `buf` through the scratch buffer, in one `put_slice`.
    fn put(&mut self, alert: &Alert, buf: &mut impl BufMut) {
        self.scratch.clear();
        encode_alert(alert, &mut self.scratch);
        buf.put_slice(&self.scratch);
        if self.scratch.capacity() > SCRATCH_KEPT {
            self.scratch = Vec::new();
        }
    }
}

/// Writes `alert` as prost writes the equivalent `pb::Alert`: fields in number order, proto3 defaults omitted,
/// the time always present, map entries with their default key or value omitted. Every key and nearly every length
/// is one byte, so the varints are written here, inline, a push per byte.
pub fn encode_alert(alert: &Alert, buf: &mut Vec<u8>) {
    put_str(1, &alert.sensor_id, buf);
    put_str(2, &alert.rule, buf);
    put_varint_field(3, alert_state_to_pb(alert.state) as i32 as u64, buf);
    put_varint_field(4, severity_to_pb(alert.severity) as i32 as u64, buf);
    put_str(5, &alert.message, buf);
    put_varint_field(6, alert.reading_seq, buf);
    // A Timestamp: seconds (int64) and nanos (int32, never negative in a normalized one), each omitted when 0;
    // the field itself is always present, as prost writes a `Some` message.
    let time = prost_types::Timestamp::from(alert.time);
    let (seconds, nanos) = (time.seconds as u64, i64::from(time.nanos) as u64);
    put_key(7, WireType::LengthDelimited, buf);
    put_varint((varint_field_len(1, seconds) + varint_field_len(2, nanos)) as u64, buf);
    put_varint_field(1, seconds, buf);
    put_varint_field(2, nanos, buf);
    for (name, &value) in &alert.values {
        put_key(8, WireType::LengthDelimited, buf);
        put_varint((str_len(1, name) + double_len(2, value)) as u64, buf);
        put_str(1, name, buf);
        put_double(2, value, buf);
    }
    for term in &alert.explanation {
        let len = str_len(1, &term.expression)
            + double_len(2, term.value)
            + str_len(3, term.operator)
            + double_len(4, term.threshold);
        put_key(9, WireType::LengthDelimited, buf);
        put_varint(len as u64, buf);
        put_str(1, &term.expression, buf);
        put_double(2, term.value, buf);
        put_str(3, term.operator, buf);
        put_double(4, term.threshold, buf);
    }
}

/// A varint: seven bits a byte, low bits first (a negative int32 or int64 as its 64-bit two's complement).
#[inline]
fn put_varint(mut value: u64, buf: &mut Vec<u8>) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// A field's key: its number and wire type.
#[inline]
fn put_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// A proto3 varint field (an enum, `uint64`, `int64`, or `int32` sign-extended), omitted when 0.
#[inline]
fn put_varint_field(tag: u32, value: u64, buf: &mut Vec<u8>) {
    if value != 0 {
        put_key(tag, WireType::Varint, buf);
        put_varint(value, buf);
    }
}

/// The encoded length of a proto3 varint field (0 when 0, as it is omitted).
fn varint_field_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { encoding::key_len(tag) + encoding::encoded_len_varint(value) }
}

/// The encoded length of a proto3 `string` field (0 when empty, as it is omitted).
fn str_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        encoding::key_len(tag) + encoding::encoded_len_varint(value.len() as u64) + value.len()
    }
}

/// The encoded length of a proto3 `double` field (0 when 0, as it is omitted).
fn double_len(tag: u32, value: f64) -> usize {
    if value == 0.0 { 0 } else { encoding::double::encoded_len(tag, &value) }
}

/// A proto3 `double` field, omitted when 0 (as prost omits it: -0.0 too).
#[inline]
fn put_double(tag: u32, value: f64, buf: &mut Vec<u8>) {
    if value != 0.0 {
        put_key(tag, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

/// A proto3 `string` field, omitted when empty.
#[inline]
fn put_str(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        put_key(tag, WireType::LengthDelimited, buf);
        put_varint(value.len() as u64, buf);
        buf.extend_from_slice(value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, SystemTime},
    };

    use alertstream_engine::{AlertState, Severity, Term, Values};
    use prost::Message as _;

    use super::*;
    use crate::pb;

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
        let values: Values = (0..rng.next() % 4).map(|_| (rng.text(), rng.value())).collect();
        Alert {
            sensor_id: rng.text().into(),
            rule: Arc::from(rng.text()),
            state: if rng.next().is_multiple_of(2) { AlertState::Firing } else { AlertState::Resolved },
            severity: [Severity::Info, Severity::Warning, Severity::Critical][(rng.next() % 3) as usize],
            message: Arc::from(rng.text()),
            reading_seq: [0, 1, 300, u64::MAX, rng.next()][(rng.next() % 5) as usize],
            time,
            values,
            explanation: (0..rng.next() % 3)
                .map(|_| Term {
                    expression: Arc::from(rng.text()),
                    value: [f64::NAN, f64::INFINITY, rng.value()][(rng.next() % 3) as usize],
                    operator: ["<", ">=", "=="][(rng.next() % 3) as usize],
                    threshold: rng.value(),
                })
                .collect(),
        }
    }

    fn random_reading(rng: &mut Rng) -> pb::Reading {
        pb::Reading {
            sensor_id: rng.text(),
            values: (0..rng.next() % 5).map(|_| (rng.text(), rng.value())).collect(),
            time: (!rng.next().is_multiple_of(3)).then(|| prost_types::Timestamp {
                seconds: (rng.next() % 20_000_000_000) as i64 - 10_000_000_000,
                nanos: (rng.next() % 2_000_000_000) as i32 - 1_000_000_000,
            }),
            seq: [0, 1, u64::MAX, rng.next()][(rng.next() % 4) as usize],
        }
    }

    /// What prost's own decoding makes of `bytes`, in the inbound form.
    fn prost_decode(bytes: &[u8]) -> Result<InboundReading, String> {
        let reading = pb::Reading::decode(bytes).map_err(|e| e.to_string())?;
        Ok(InboundReading {
            sensor_id: reading.sensor_id,
            values: reading.values.into_iter().collect(),
            time: reading.time,
            seq: reading.seq,
            over_limit: false,
        })
    }

    #[test]
    fn past_the_limit_of_entries_a_reading_is_flagged_and_no_more_are_hashed() {
        // One entry of `values`: field 2, 12 bytes: the name "t" (field 1) and 1.0 (field 2, fixed64).
        let entry = |name: u8| {
            let mut bytes = vec![0x12, 0x0C, 0x0A, 0x01, name, 0x11];
            bytes.extend_from_slice(&1.0f64.to_le_bytes());
            bytes
        };
        let message = |entries: usize, name: &dyn Fn(usize) -> u8| -> Vec<u8> {
            let mut bytes = vec![0x0A, 0x01, b's'];
            (0..entries).for_each(|i| bytes.extend(entry(name(i))));
            bytes
        };
        let limit = alertstream_engine::MAX_METRICS;
        // Repeats of one name count as entries: prost's map would hold one name, and so does ours, flagged.
        let repeated = decode_reading(&mut message(limit + 1, &|_| b't').as_slice()).unwrap();
        assert!(repeated.over_limit);
        assert_eq!(repeated.values.len(), 1);
        let at_limit = decode_reading(&mut message(limit, &|_| b't').as_slice()).unwrap();
        assert!(!at_limit.over_limit);
        // Distinct names past the limit are read but not kept: the map holds the first `limit` entries' names.
        let name = |i: usize| if i < limit { b'0' + (i % 64) as u8 } else { b'z' };
        let distinct = decode_reading(&mut message(3 * limit, &name).as_slice()).unwrap();
        assert!(distinct.over_limit);
        assert_eq!(distinct.values.len(), 64);
        assert!(!distinct.values.contains_key("z"), "a name first seen past the limit is not kept");
        let epoch = || std::time::SystemTime::UNIX_EPOCH;
        let error = crate::convert::reading_from_inbound(repeated.clone(), epoch).unwrap_err();
        assert_eq!(error.1.to_string(), "invalid reading: values has more than 1024 metrics, the limit");
        // As `validate` orders its checks, the sensor id's problem is named first.
        let nameless = InboundReading { sensor_id: String::new(), ..repeated };
        let error = crate::convert::reading_from_inbound(nameless, epoch).unwrap_err();
        assert_eq!(error.1.to_string(), "invalid reading: sensor_id is empty");
    }

    #[test]
    fn readings_decode_as_prost_decodes_them() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for _ in 0..3_000 {
            let bytes = random_reading(&mut rng).encode_to_vec();
            let ours = decode_reading(&mut bytes.as_slice()).map_err(|e| e.to_string());
            assert_eq!(ours, prost_decode(&bytes));
            // The same bytes damaged: a byte changed, the message cut short, garbage appended. Whatever prost
            // makes of them, a reading or an error, so do we, with the same message.
            let mut damaged = bytes.clone();
            if !damaged.is_empty() {
                let at = (rng.next() as usize) % damaged.len();
                damaged[at] = rng.next() as u8;
                let cut = (rng.next() as usize) % damaged.len();
                for candidate in [damaged.clone(), bytes[..cut].to_vec(), [&bytes[..], &damaged[at..]].concat()] {
                    let ours = decode_reading(&mut candidate.as_slice()).map_err(|e| e.to_string());
                    assert_eq!(ours, prost_decode(&candidate), "{candidate:?}");
                }
            }
        }
    }

    #[test]
    fn a_repeated_metric_keeps_its_last_value_and_other_messages_are_refused_as_prost_refuses_them() {
        let mut bytes = pb::Reading { sensor_id: "s".into(), values: [("t".into(), 1.0)].into(), time: None, seq: 0 }
            .encode_to_vec();
        bytes.extend(pb::Reading { values: [("t".into(), 2.0)].into(), ..Default::default() }.encode_to_vec());
        let reading = decode_reading(&mut bytes.as_slice()).unwrap();
        assert_eq!(reading.values, Values::from_iter([("t".to_owned(), 2.0)]));
        // Field 2 as a varint, as tests/limits.rs sends it.
        let wrong = [0x10, 0x07];
        assert_eq!(decode_reading(&mut wrong.as_slice()).map_err(|e| e.to_string()), prost_decode(&wrong));
        assert!(decode_reading(&mut wrong.as_slice()).is_err());
    }

    #[test]
    fn groups_nested_in_a_value_entry_meet_prosts_recursion_limit() {
        // Field 2 (values), one entry whose unknown field 3 holds `depth` nested groups.
        for depth in [1usize, 98, 99, 100, 101] {
            let mut entry = vec![27u8; depth];
            entry.extend(std::iter::repeat_n(28u8, depth));
            let mut message = vec![0x12];
            encoding::encode_varint(entry.len() as u64, &mut message);
            message.extend(entry);
            let ours = decode_reading(&mut message.as_slice()).map_err(|e| e.to_string());
            assert_eq!(ours, prost_decode(&message), "depth {depth}");
        }
    }

    #[test]
    fn the_encoder_writes_each_alert_whole_and_keeps_little_of_a_large_one() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        let mut encoder = AlertEncoder::default();
        let (small, mut large) = (random_alert(&mut rng), random_alert(&mut rng));
        large.values = (0..2_000).map(|i| (format!("metric_{i}"), 1.0)).collect();
        let mut out = Vec::new();
        encoder.put(&small, &mut out);
        assert!(encoder.scratch.capacity() > 0, "a small alert's scratch is kept for the next");
        encoder.put(&large, &mut out);
        assert_eq!(encoder.scratch.capacity(), 0, "a large alert's scratch is let go");
        encoder.put(&small, &mut out);
        let mut expected = Vec::new();
        for alert in [&small, &large, &small] {
            encode_alert(alert, &mut expected);
        }
        assert_eq!(out, expected);
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
            // NaN is not equal to itself: compared by its bits (-0.0, omitted as 0 is, as 0).
            let bits = |alert: pb::Alert| {
                let bits = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
                let terms: Vec<_> = alert.explanation.iter().map(|t| (bits(t.value), bits(t.threshold))).collect();
                (pb::Alert { explanation: Vec::new(), ..alert }, terms)
            };
            assert_eq!(bits(decoded), bits(crate::convert::alert_to_pb(alert.clone())), "{alert:?}");
            // With at most one map entry there is one order: the bytes are prost's, to the byte.
            if alert.values.len() <= 1 {
                assert_eq!(ours, prost_bytes(&alert), "{alert:?}");
            } else {
                assert_eq!(ours.len(), prost_bytes(&alert).len(), "{alert:?}");
            }
        }
    }
}
