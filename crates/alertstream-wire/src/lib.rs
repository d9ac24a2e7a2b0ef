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
            1 => ("sensor_id", encoding::string::merge(wire_type, &mut reading.sensor_id, buf, ctx.clone())),
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
            1 => encoding::string::merge(wire_type, &mut self.name, buf, ctx),
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
