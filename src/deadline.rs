//! The client's deadline: gRPC's `grpc-timeout` request header, which the `Stream` loop honours (tonic's own timeout
//! covers only the wait for the response headers, which a stream sends at once).

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// The request header that carries the client's timeout.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The timeout a request's `grpc-timeout` header asks for: `None` when there is none, or when it is malformed
/// (logged; the call goes on without a deadline, as tonic does).
pub fn requested_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get(GRPC_TIMEOUT)?;
    let parsed = value.to_str().ok().and_then(parse_grpc_timeout);
    if parsed.is_none() {
        tracing::debug!(value = ?value, "Ignoring a malformed grpc-timeout header.");
    }
    parsed
}

/// Parses a `grpc-timeout` value: at most 8 ASCII digits and a unit, `H`ours, `M`inutes, `S`econds,
/// `m`illiseconds, `u`microseconds or `n`anoseconds (the gRPC over HTTP/2 specification).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit_at = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(unit_at)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn malformed_values_are_refused() {
        for value in ["", "S", "10", "10s", "123456789S", "-1S", "1.5S", "10 S", "１S", "1１"] {
            assert_eq!(parse_grpc_timeout(value), None, "{value:?}");
        }
    }

    #[test]
    fn the_header_is_read_from_metadata() {
        let mut metadata = MetadataMap::new();
        assert_eq!(requested_timeout(&metadata), None);
        metadata.insert(GRPC_TIMEOUT, "1500m".parse().unwrap());
        assert_eq!(requested_timeout(&metadata), Some(Duration::from_millis(1500)));
        metadata.insert(GRPC_TIMEOUT, "soon".parse().unwrap());
        assert_eq!(requested_timeout(&metadata), None);
    }
}
