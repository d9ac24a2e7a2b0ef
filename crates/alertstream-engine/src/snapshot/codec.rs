//! The byte form of a snapshot: little-endian numbers, lengths as `u32`, times as signed nanoseconds from the Unix
//! epoch. A [`Reader`] checks every length against what is left, so a damaged snapshot is an error, never a panic
//! or a huge allocation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SnapshotError;

/// Appends values to a snapshot.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    /// A length or count.
    pub(crate) fn len(&mut self, n: usize) {
        self.bytes.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn time(&mut self, t: SystemTime) {
        let nanos = match t.duration_since(UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
        };
        self.bytes.extend_from_slice(&nanos.to_le_bytes());
    }

    pub(crate) fn option_time(&mut self, t: Option<SystemTime>) {
        self.bool(t.is_some());
        if let Some(t) = t {
            self.time(t);
        }
    }

    /// (time, value) entries, oldest first.
    pub(crate) fn entries<'a>(&mut self, entries: impl ExactSizeIterator<Item = &'a (SystemTime, f64)>) {
        self.len(entries.len());
        for &(time, value) in entries {
            self.time(time);
            self.f64(value);
        }
    }
}

/// Reads values back, in the order they were written.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.bytes.len() < n {
            return Err(SnapshotError::Damaged("it ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The next `n` bytes, as they are.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        self.take(n)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn bool(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(SnapshotError::Damaged("a flag is neither 0 nor 1")),
        }
    }

    pub(crate) fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, SnapshotError> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// A count of items each at least `item_size` bytes long: never more than the bytes left can hold.
    pub(crate) fn len(&mut self, item_size: usize) -> Result<usize, SnapshotError> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        if n.saturating_mul(item_size.max(1)) > self.bytes.len() {
            return Err(SnapshotError::Damaged("a count is larger than the bytes left"));
        }
        Ok(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, SnapshotError> {
        let n = self.len(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| SnapshotError::Damaged("a name is not UTF-8"))
    }

    pub(crate) fn time(&mut self) -> Result<SystemTime, SnapshotError> {
        let nanos = i128::from_le_bytes(self.array()?);
        let magnitude = Duration::new(
            u64::try_from(nanos.unsigned_abs() / 1_000_000_000).map_err(|_| SnapshotError::Damaged("a time"))?,
            (nanos.unsigned_abs() % 1_000_000_000) as u32,
        );
        let time = if nanos >= 0 { UNIX_EPOCH.checked_add(magnitude) } else { UNIX_EPOCH.checked_sub(magnitude) };
        time.ok_or(SnapshotError::Damaged("a time out of range"))
    }

    pub(crate) fn option_time(&mut self) -> Result<Option<SystemTime>, SnapshotError> {
        if self.bool()? { self.time().map(Some) } else { Ok(None) }
    }

    /// (time, value) entries, as [`Writer::entries`] wrote them.
    pub(crate) fn entries(&mut self) -> Result<Vec<(SystemTime, f64)>, SnapshotError> {
        let n = self.len(24)?;
        (0..n).map(|_| Ok((self.time()?, self.f64()?))).collect()
    }
}
