//! The `alertstream.v1.Reading` wire decoding the server's `Stream` method uses, apart from tonic: bytes in,
//! an [`InboundReading`] out whose values are already the engine's map, decoded field by field as prost decodes a
//! `Reading` (prost's own decoding of each field, the same errors). A crate of its own so that the fuzz target
//! that checks it against prost builds without tonic; the product's `stream_codec` wraps it in tonic's codec and
//! tests it against the generated types.

use alertstream_engine::{MAX_METRICS, Values};
use bytes::{Buf, BufMut};
use prost::{
    DecodeError,
    encoding::{self, DecodeContext, WireType},
};

/// An `alertstream.v1.Reading` as it came off the wire: the fields of `pb::Reading`, its values already in the
/// engine's map. the product's `convert::reading_from_inbound` makes it an engine reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundReading {
    /// Field 1.
    pub sensor_id: String,
    /// Field 2 (a map: the last entry of a name wins, as in prost), from its first [`MAX_METRICS`] entries only.
    pub values: Values,
    /// Whether field 2 had more than [`MAX_METRICS`] entries, repeated names included: the reading is invalid, and
    /// the entries past the limit were read but not hashed into `values`.
    pub over_limit: bool,
    /// Field 3.
    pub time: Option<prost_types::Timestamp>,
    /// Field 4.
    pub seq: u64,
}

/// Decodes a whole `Reading` message from `buf`, as prost's derived `Message::decode` would: each field with
/// prost's own merge function, errors naming `Reading.<field>`, unknown fields skipped.
///
/// # Errors
/// The bytes are not a `Reading`.
pub fn decode_reading(buf: &mut impl Buf) -> Result<InboundReading, DecodeError> {
    let mut reading = InboundReading::default();
    let ctx = DecodeContext::default();
    let mut entries = 0usize;
    while buf.has_remaining() {
        let (tag, wire_type) = encoding::decode_key(buf)?;
        let (field, merged) = match tag {
            1 => ("sensor_id", merge_string(wire_type, &mut reading.sensor_id, buf, ctx.clone())),
            2 => {
                entries += 1;
                let keep = entries <= MAX_METRICS;
                ("values", merge_value(wire_type, keep.then_some(&mut reading.values), buf, ctx.clone()))
            }
            3 => {
                let time = reading.time.get_or_insert_with(Default::default);
                ("time", encoding::message::merge(wire_type, time, buf, ctx.clone()))
            }
            4 => ("seq", encoding::uint64::merge(wire_type, &mut reading.seq, buf, ctx.clone())),
            _ => ("", encoding::skip_field(wire_type, tag, buf, ctx.clone())),
        };
        merged.map_err(|mut error| {
            if !field.is_empty() {
                error.push("Reading", field);
            }
            error
        })?;
    }
    reading.over_limit = entries > MAX_METRICS;
    Ok(reading)
}

/// A `string` field, as prost's `string::merge` reads it, into a string allocated at exactly its length. A
/// well-formed string that lies whole in `buf`'s current chunk (every one, from the contiguous buffer a message
/// arrives in) is read from there in one step; anything else, a malformed field included, goes to prost's own merge,
/// so the errors are prost's. prost's merge reserves the string's length in an empty `Vec`, which rounds a string of
/// under 8 bytes up to 8: a short id with spare capacity that an alert would later have to copy away.
fn merge_string(
    wire_type: WireType,
    value: &mut String,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    if wire_type == WireType::LengthDelimited {
        let chunk = buf.chunk();
        let mut rest = chunk;
        if let Ok(len) = encoding::decode_varint(&mut rest) {
            let prefix = chunk.len() - rest.len();
            let text = usize::try_from(len).ok().and_then(|len| rest.get(..len)).map(std::str::from_utf8);
            if let Some(Ok(text)) = text {
                let consumed = prefix + text.len();
                *value = String::from(text);
                buf.advance(consumed);
                return Ok(());
            }
        }
    }
    encoding::string::merge(wire_type, value, buf, ctx)
}

/// One entry of the `values` map, as prost's map merge reads it: a nested message of key (1) and value (2), either
/// absent meaning its default, inserted over any earlier entry of the same name. Read through prost's
/// `message::merge`, so the wire type check and the recursion limit are prost's own. Past the limit of entries
/// (`values` is `None`) it is read and checked but not inserted: counting entries, not distinct names, is what
/// keeps a flood of one repeated colliding name from being hashed again and again.
fn merge_value(
    wire_type: WireType,
    values: Option<&mut Values>,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    let mut entry = ValueEntry::default();
    encoding::message::merge(wire_type, &mut entry, buf, ctx)?;
    if let Some(values) = values {
        values.insert(entry.name, entry.value);
    }
    Ok(())
}

/// A `values` map entry as a message of its own, for [`merge_value`]; decoded only, never sent.
#[derive(Debug, Default)]
struct ValueEntry {
    name: String,
    value: f64,
}

impl prost::Message for ValueEntry {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.name.is_empty() {
            encoding::string::encode(1, &self.name, buf);
        }
        if self.value != 0.0 {
            encoding::double::encode(2, &self.value, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // As prost's map entries: no field name is added to an error.
        match tag {
            1 => merge_string(wire_type, &mut self.name, buf, ctx),
            2 => encoding::double::merge(wire_type, &mut self.value, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.name.is_empty() { 0 } else { encoding::string::encoded_len(1, &self.name) })
            + if self.value == 0.0 { 0 } else { encoding::double::encoded_len(2, &self.value) }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Buf as _;

    use super::*;

    /// A reading of sensor `id`, one metric `t` = 1.5 and seq 7, as prost encodes it.
    fn message(id: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0x0A, id.len() as u8];
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&[0x12, 0x0C, 0x0A, 0x01, b't', 0x11]);
        bytes.extend_from_slice(&1.5f64.to_le_bytes());
        bytes.extend_from_slice(&[0x20, 0x07]);
        bytes
    }

    #[test]
    fn strings_are_allocated_at_their_length() {
        // prost's own merge would leave both with room for 8 bytes, which an alert then copies away.
        let reading = decode_reading(&mut message(b"s-1").as_slice()).unwrap();
        assert_eq!(reading.sensor_id, "s-1");
        assert_eq!(reading.sensor_id.capacity(), 3);
        let (name, value) = reading.values.iter().next().unwrap();
        assert_eq!((name.as_str(), name.capacity(), *value), ("t", 1, 1.5));
        assert_eq!(reading.seq, 7);
    }

    #[test]
    fn a_message_split_anywhere_reads_as_it_does_whole() {
        // Split across two chunks, a string may straddle them: it is then read by prost's merge, with the same
        // result, and a bad one with the same error.
        let mut bad_utf8 = message(b"s-1");
        bad_utf8[3] = 0xFF;
        let mut overlong = message(b"s-1");
        overlong[1] = 40;
        // prost's own words for the two bad messages, as its derived decoding of a `Reading` gives them.
        let not_utf8 = "failed to decode Protobuf message: Reading.sensor_id: invalid string value: data is not UTF-8 \
            encoded";
        let underflow = "failed to decode Protobuf message: Reading.sensor_id: buffer underflow";
        let cases = [
            (message(b"sensor-1"), None),
            (message(b""), None),
            (bad_utf8, Some(not_utf8)),
            (overlong, Some(underflow)),
        ];
        for (bytes, error) in cases {
            let whole = decode_reading(&mut bytes.as_slice()).map_err(|e| e.to_string());
            assert_eq!(whole.as_ref().err().map(String::as_str), error);
            for at in 0..=bytes.len() {
                let (front, back) = bytes.split_at(at);
                let split = decode_reading(&mut front.chain(back)).map_err(|e| e.to_string());
                assert_eq!(split, whole, "split at {at}");
            }
        }
    }
}
