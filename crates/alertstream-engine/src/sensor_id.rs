//! A sensor's id as a stream's state keeps it: inline when short, so that finding a sensor among many touches its
//! state and not also a separate allocation for its id.

/// The most bytes an id kept inline may have: a UUID's text (36) fits, and the whole is 40 bytes (on 64-bit targets).
const INLINE: usize = 38;

/// A sensor id, inline up to [`INLINE`] bytes and on the heap beyond.
#[derive(Clone)]
pub(crate) enum SensorId {
    /// The id's bytes, `len` of them.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// An id too long to keep inline.
    Heap(Box<str>),
}

impl SensorId {
    /// The id `id`.
    pub(crate) fn new(id: &str) -> Self {
        match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(id.into()),
        }
    }

    /// The id's bytes: what the stream's index hashes and compares.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(id) => id.as_bytes(),
        }
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Made from a `&str` whole, so always UTF-8.
            Self::Inline { .. } => match std::str::from_utf8(self.as_bytes()) {
                Ok(id) => id,
                Err(_) => {
                    debug_assert!(false, "an inline sensor id is not UTF-8");
                    ""
                }
            },
            Self::Heap(id) => id,
        }
    }
}

impl std::fmt::Debug for SensorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_id_whole_inline_or_not() {
        let long = "x".repeat(INLINE + 1);
        let exact = "é".repeat(INLINE / 2);
        for id in ["", "line-1/oven-3", "0f8fad5b-d9cb-469f-a165-70867728950e", exact.as_str(), long.as_str()] {
            let kept = SensorId::new(id);
            assert_eq!(kept.as_str(), id);
            assert_eq!(kept.as_bytes(), id.as_bytes());
            assert_eq!(matches!(kept, SensorId::Inline { .. }), id.len() <= INLINE, "{id}");
        }
        assert!(std::mem::size_of::<SensorId>() <= 40, "inline ids make the state no larger than 40 bytes");
    }
}
