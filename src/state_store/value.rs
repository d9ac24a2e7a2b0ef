//! The value a sensor's state is saved as: the name of the process that wrote it, then one or more versions of the
//! state, newest first, each with the `seq` of the sensor's latest reading in it. A stream that resumes keeps the
//! last [`RESUME_VERSIONS`], so that the sensor's next stream can go back to the one its client's last checkpoint
//! named, which the client's first reading says: the newest version older than that reading. A client that reads
//! its alerts late may not have seen the checkpoints of the newest versions; the states they hold are ahead of
//! what it will send again, and restoring them would skip readings whose alerts it never got.
//!
//! Layout: owner (8 bytes), version count (1 byte), then per version its seq (8 bytes), its length (4 bytes) and
//! the engine's snapshot; integers little-endian. No version: a stream took the sensor over before it had a state.

/// How many versions a resuming stream's sensors keep: its client may be this many saves minus one behind in
/// reading its alerts, and lose none if the server dies.
pub(super) const RESUME_VERSIONS: usize = 4;

/// One version: the seq of the sensor's latest reading in it, and the engine's snapshot.
pub(super) type Version<'a> = (u64, &'a [u8]);

/// The value of `versions` (newest first) written by `owner`.
pub(super) fn encode<'a>(owner: u64, versions: impl IntoIterator<Item = Version<'a>>) -> Vec<u8> {
    let mut value = owner.to_le_bytes().to_vec();
    value.push(0);
    let mut count = 0u8;
    for (seq, snapshot) in versions.into_iter().take(usize::from(u8::MAX)) {
        value.extend_from_slice(&seq.to_le_bytes());
        value.extend_from_slice(&u32::try_from(snapshot.len()).unwrap_or(u32::MAX).to_le_bytes());
        value.extend_from_slice(snapshot);
        count += 1;
    }
    value[8] = count;
    value
}

/// A value's owner and versions, newest first (`None`: damaged).
pub(super) fn decode(value: &[u8]) -> Option<(u64, Vec<Version<'_>>)> {
    let (owner, rest) = value.split_first_chunk::<8>()?;
    let (&count, mut rest) = rest.split_first()?;
    let mut versions = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (seq, after) = rest.split_first_chunk::<8>()?;
        let (len, after) = after.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
        let snapshot = after.get(..len)?;
        versions.push((u64::from_le_bytes(*seq), snapshot));
        rest = &after[len..];
    }
    rest.is_empty().then_some((u64::from_le_bytes(*owner), versions))
}

/// Which of `versions` (newest first, not empty) a stream restores: for a client resuming from its reading
/// `first_seq`, the newest one older than that reading (or, when none is, the oldest, whose readings the client
/// will partly send again: the stream says so); otherwise the newest.
pub(super) fn choose(versions: &[Version<'_>], first_seq: Option<u64>) -> usize {
    match first_seq {
        Some(first) => versions.iter().position(|(seq, _)| *seq < first).unwrap_or(versions.len().saturating_sub(1)),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reads_back_its_owner_and_versions() {
        let value = encode(7, [(30, &b"newest"[..]), (20, &b"older"[..]), (10, &b""[..])]);
        let (owner, versions) = decode(&value).unwrap();
        assert_eq!(owner, 7);
        assert_eq!(versions, [(30, &b"newest"[..]), (20, &b"older"[..]), (10, &b""[..])]);
        assert_eq!(decode(&encode(9, [])), Some((9, Vec::new())));
        // Cut short, or with bytes after its last version: damaged.
        assert_eq!(decode(&value[..value.len() - 1]), None);
        assert_eq!(decode(&[value.as_slice(), b"x"].concat()), None);
        assert_eq!(decode(&value[..5]), None);
    }

    #[test]
    fn a_resuming_client_gets_the_newest_version_older_than_its_first_reading() {
        let versions = [(30, &b"c"[..]), (20, &b"b"[..]), (10, &b"a"[..])];
        // Its last checkpoint was the newest: it sends 31 on.
        assert_eq!(choose(&versions, Some(31)), 0);
        // It never read the checkpoints of 30 (nor of 25, had there been one): it sends 21 on.
        assert_eq!(choose(&versions, Some(21)), 1);
        assert_eq!(choose(&versions, Some(30)), 1);
        // Further behind than every version: the oldest, and the stream reports the gap.
        assert_eq!(choose(&versions, Some(5)), 2);
        // Not resuming: the newest.
        assert_eq!(choose(&versions, None), 0);
    }
}
