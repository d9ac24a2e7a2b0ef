//! The load generator's light gRPC codec: readings go out as bytes encoded beforehand, and alerts are checked where
//! they lie in the receive buffer, without being decoded into messages.
//!
//! The decoder walks an alert's protobuf fields and reads two of them, `sensor_id` (1) and `reading_seq` (6),
//! skipping the rest; a [`Checker`] then holds every stream to the contract the harness relies on: each alert
//! answers a reading that was sent (`1 ≤ seq ≤ readings`), carries that reading's sensor id, and comes after every
//! earlier alert of its sensor (seqs strictly increase per sensor). The generator numbers reading `k` of a stream
//! `seq = k + 1` and sends it for sensor `k % sensors`, so the sensor is known from the seq: the check is an index
//! and a byte comparison, with no map and no allocation per alert. A failed check ends the stream with an error.
//! Together with the caller's count (as many alerts as readings), it means every reading yielded exactly one alert.

use std::fmt;

use bytes::{Buf as _, BufMut as _, Bytes};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// The two fields of an alert the harness reads, borrowed from the encoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertKey<'a> {
    /// Field 1, `sensor_id`, as bytes.
    pub sensor_id: &'a [u8],
    /// Field 6, `reading_seq`: the seq of the reading that caused the alert.
    pub reading_seq: u64,
}

/// Why an alert failed the harness's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertError {
    /// The bytes are not a protobuf message of the alert's shape.
    Malformed(&'static str),
    /// The seq is not that of a reading sent on this stream.
    UnknownSeq {
        /// The alert's `reading_seq`.
        seq: u64,
        /// How many readings the stream sends (seqs 1 to this).
        readings: u64,
    },
    /// The sensor id is not the one reading `seq` had.
    WrongSensor {
        /// The alert's `reading_seq`.
        seq: u64,
        /// The reading's sensor id.
        expected: String,
        /// The alert's sensor id.
        got: String,
    },
    /// The seq is not above the last one seen for its sensor.
    OutOfOrder {
        /// The sensor id.
        sensor: String,
        /// The alert's `reading_seq`.
        seq: u64,
        /// The sensor's previous `reading_seq`.
        after: u64,
    },
}

impl fmt::Display for AlertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed alert: {why}"),
            Self::UnknownSeq { seq, readings } => {
                write!(f, "alert for reading seq {seq}, but the stream sends seqs 1 to {readings}")
            }
            Self::WrongSensor { seq, expected, got } => {
                write!(f, "alert for reading {seq} names sensor {got:?}, the reading was sensor {expected:?}")
            }
            Self::OutOfOrder { sensor, seq, after } => {
                write!(f, "sensor {sensor:?}: alert for seq {seq} after {after}")
            }
        }
    }
}

impl std::error::Error for AlertError {}

/// Reads a base-128 varint at `*pos`, moving `*pos` past it.
fn varint(msg: &[u8], pos: &mut usize) -> Result<u64, AlertError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *msg.get(*pos).ok_or(AlertError::Malformed("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(AlertError::Malformed("varint longer than 10 bytes"))
}

/// Moves `*pos` forward by `len` bytes, which must be there.
fn skip(msg: &[u8], pos: &mut usize, len: u64) -> Result<(), AlertError> {
    let end = usize::try_from(len).ok().and_then(|len| pos.checked_add(len)).filter(|&end| end <= msg.len());
    *pos = end.ok_or(AlertError::Malformed("a field runs past the end"))?;
    Ok(())
}

/// Walks the fields of an encoded `Alert`, returning its `sensor_id` and `reading_seq` (empty and 0 when absent,
/// as proto3 omits them) and skipping every other field.
pub fn walk_alert(msg: &[u8]) -> Result<AlertKey<'_>, AlertError> {
    let mut key = AlertKey { sensor_id: &[], reading_seq: 0 };
    let mut pos = 0;
    while pos < msg.len() {
        let tag = varint(msg, &mut pos)?;
        let (field, wire_type) = (tag >> 3, tag & 7);
        match (field, wire_type) {
            (0, _) => return Err(AlertError::Malformed("field number 0")),
            (6, 0) => key.reading_seq = varint(msg, &mut pos)?,
            (6, _) => return Err(AlertError::Malformed("reading_seq is not a varint")),
            (1, 2) => {
                let len = varint(msg, &mut pos)?;
                let start = pos;
                skip(msg, &mut pos, len)?;
                key.sensor_id = &msg[start..pos];
            }
            (1, _) => return Err(AlertError::Malformed("sensor_id is not length-delimited")),
            (_, 0) => {
                varint(msg, &mut pos)?;
            }
            (_, 1) => skip(msg, &mut pos, 8)?,
            (_, 2) => {
                let len = varint(msg, &mut pos)?;
                skip(msg, &mut pos, len)?;
            }
            (_, 5) => skip(msg, &mut pos, 4)?,
            _ => return Err(AlertError::Malformed("unsupported wire type")),
        }
    }
    Ok(key)
}

/// The per-stream checks on alerts; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    /// Sensor `i`'s id: reading `seq` is of sensor `(seq - 1) % ids.len()`.
    ids: Vec<Box<[u8]>>,
    /// The last seq seen per sensor, 0 before the first.
    last_seq: Vec<u64>,
    /// The readings the stream sends: seqs 1 to this.
    readings: u64,
}

impl Checker {
    /// Checks a stream that sends `readings` readings, reading `k` (from 0) with seq `k + 1` for sensor
    /// `sensor_ids[k % sensor_ids.len()]`. The default checker accepts no alert.
    pub fn new<S: AsRef<str>>(sensor_ids: &[S], readings: u64) -> Self {
        let ids: Vec<Box<[u8]>> = sensor_ids.iter().map(|id| id.as_ref().as_bytes().into()).collect();
        let readings = if ids.is_empty() { 0 } else { readings };
        Self { last_seq: vec![0; ids.len()], ids, readings }
    }

    /// Checks one alert; returns its seq.
    pub fn check(&mut self, alert: AlertKey<'_>) -> Result<u64, AlertError> {
        let seq = alert.reading_seq;
        if seq == 0 || seq > self.readings {
            return Err(AlertError::UnknownSeq { seq, readings: self.readings });
        }
        // Not 0: `readings` is 0 when there are no ids.
        let sensor = ((seq - 1) % self.ids.len() as u64) as usize;
        let expected = &*self.ids[sensor];
        if alert.sensor_id != expected {
            return Err(AlertError::WrongSensor {
                seq,
                expected: String::from_utf8_lossy(expected).into_owned(),
                got: String::from_utf8_lossy(alert.sensor_id).into_owned(),
            });
        }
        let last = &mut self.last_seq[sensor];
        if seq <= *last {
            return Err(AlertError::OutOfOrder {
                sensor: String::from_utf8_lossy(expected).into_owned(),
                seq,
                after: *last,
            });
        }
        *last = seq;
        Ok(seq)
    }

    /// Walks and checks one encoded alert; returns its seq.
    pub fn check_encoded(&mut self, msg: &[u8]) -> Result<u64, AlertError> {
        self.check(walk_alert(msg)?)
    }
}

/// The codec of one `Stream` call: readings are sent as their encoded bytes, alerts received as their checked seq.
#[derive(Debug, Clone, Default)]
pub struct LightCodec {
    checker: Checker,
}

impl LightCodec {
    /// A codec whose decoder holds the stream's alerts to `checker`.
    pub fn new(checker: Checker) -> Self {
        Self { checker }
    }
}

impl Codec for LightCodec {
    type Encode = Bytes;
    type Decode = u64;
    type Encoder = RawEncoder;
    type Decoder = AlertDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    /// Called once per call (tonic makes one decoder per response stream), so it takes the checker.
    fn decoder(&mut self) -> AlertDecoder {
        AlertDecoder { checker: std::mem::take(&mut self.checker) }
    }
}

/// Writes already-encoded messages as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// Checks each alert in place (see [`Checker`]) and yields its `reading_seq`.
#[derive(Debug)]
pub struct AlertDecoder {
    checker: Checker,
}

impl Decoder for AlertDecoder {
    type Item = u64;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<u64>, Status> {
        let len = src.remaining();
        // The buffer holds exactly one message, contiguous in tonic's receive buffer; copy it should it not be.
        let checked = if src.chunk().len() == len {
            let checked = self.checker.check_encoded(src.chunk());
            src.advance(len);
            checked
        } else {
            self.checker.check_encoded(&src.copy_to_bytes(len))
        };
        checked.map(Some).map_err(|e| Status::data_loss(format!("the harness's check failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use prost::Message as _;

    use super::*;
    use crate::pb;

    fn alert(sensor: &str, seq: u64) -> pb::Alert {
        pb::Alert {
            sensor_id: sensor.to_owned(),
            rule: "temp_too_low".to_owned(),
            state: pb::AlertState::Firing as i32,
            severity: pb::Severity::Warning as i32,
            message: "temp too low".to_owned(),
            reading_seq: seq,
            time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5 }),
            values: HashMap::from([("temperature".to_owned(), 5.0), ("pH".to_owned(), 7.0)]),
            explanation: vec![pb::Term {
                expression: "temperature".to_owned(),
                value: 5.0,
                operator: "<".to_owned(),
                threshold: 10.0,
            }],
        }
    }

    #[test]
    fn the_walk_reads_what_prost_wrote() {
        for (sensor, seq) in [("s0-3", 4), ("a sensor with a long name, ünïcödé", u64::MAX), ("", 1), ("x", 0)] {
            let bytes = alert(sensor, seq).encode_to_vec();
            assert_eq!(walk_alert(&bytes), Ok(AlertKey { sensor_id: sensor.as_bytes(), reading_seq: seq }));
        }
        // Fields in another order, and unknown ones of every wire type, are skipped.
        let mut bytes = Vec::new();
        prost::encoding::uint64::encode(6, &9, &mut bytes);
        prost::encoding::fixed64::encode(20, &1, &mut bytes);
        prost::encoding::fixed32::encode(21, &1, &mut bytes);
        prost::encoding::string::encode(1, &"b".to_owned(), &mut bytes);
        assert_eq!(walk_alert(&bytes), Ok(AlertKey { sensor_id: b"b", reading_seq: 9 }));
    }

    #[test]
    fn malformed_alerts_are_errors() {
        let bytes = alert("s0-3", 300).encode_to_vec();
        assert!(matches!(walk_alert(&bytes[..bytes.len() - 1]), Err(AlertError::Malformed(_))));
        assert!(matches!(walk_alert(&[0x0a, 0x05, b'a']), Err(AlertError::Malformed(_))));
        let mut too_long = vec![0x30];
        too_long.extend([0xff; 10]);
        too_long.push(0x01);
        assert_eq!(walk_alert(&too_long), Err(AlertError::Malformed("varint longer than 10 bytes")));
    }

    #[test]
    fn the_checker_passes_a_good_stream() {
        let ids = ["s0-0", "s0-1", "s0-2"];
        let mut checker = Checker::new(&ids, 7);
        for seq in 1..=7 {
            let bytes = alert(ids[(seq as usize - 1) % 3], seq).encode_to_vec();
            assert_eq!(checker.check_encoded(&bytes), Ok(seq));
        }
    }

    #[test]
    fn the_checker_rejects_a_wrong_sensor() {
        let mut checker = Checker::new(&["a", "b"], 10);
        // Seq 1 is reading 0, of sensor "a".
        let err = checker.check_encoded(&alert("b", 1).encode_to_vec()).unwrap_err();
        assert_eq!(err, AlertError::WrongSensor { seq: 1, expected: "a".to_owned(), got: "b".to_owned() });
    }

    #[test]
    fn the_checker_rejects_a_repeated_or_earlier_seq() {
        let mut checker = Checker::new(&["a", "b"], 10);
        assert_eq!(checker.check_encoded(&alert("a", 3).encode_to_vec()), Ok(3));
        let repeated = checker.check_encoded(&alert("a", 3).encode_to_vec()).unwrap_err();
        assert_eq!(repeated, AlertError::OutOfOrder { sensor: "a".to_owned(), seq: 3, after: 3 });
        let earlier = checker.check_encoded(&alert("a", 1).encode_to_vec()).unwrap_err();
        assert_eq!(earlier, AlertError::OutOfOrder { sensor: "a".to_owned(), seq: 1, after: 3 });
        // Another sensor's order is its own.
        assert_eq!(checker.check_encoded(&alert("b", 2).encode_to_vec()), Ok(2));
    }

    #[test]
    fn the_checker_rejects_a_seq_never_sent() {
        let mut checker = Checker::new(&["a"], 10);
        for seq in [0, 11] {
            let err = checker.check_encoded(&alert("a", seq).encode_to_vec()).unwrap_err();
            assert_eq!(err, AlertError::UnknownSeq { seq, readings: 10 });
        }
        assert!(matches!(
            Checker::default().check_encoded(&alert("a", 1).encode_to_vec()),
            Err(AlertError::UnknownSeq { .. })
        ));
    }
}
