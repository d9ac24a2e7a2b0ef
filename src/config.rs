//! The server's settings as plain data, and their defaults as named constants, the default rules included.

use std::time::Duration;

use alertstream_engine::RuleSet;

use crate::{
    auth::LiveTokens, clock::Clock, connections::ConnectionPolicy, sinks::Sinks, state_store::SensorStates,
    telemetry::Telemetry, tls::LiveTls,
};

/// The embedded default rules: the two production-line thresholds of the classic example.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// Default gRPC listen address; inside a container, listen on `0.0.0.0:50051`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default HTTP/JSON listen address; an empty value turns the endpoint off.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// How long open streams go on being served after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The largest inbound message (gRPC) or body (HTTP): 4 MiB, gRPC's customary default.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 << 20;
/// A stream tracks at most this many sensors: enough for a large gateway, small enough that one stream's state
/// stays in the tens of megabytes.
pub const DEFAULT_MAX_SENSORS_PER_STREAM: usize = 100_000;
/// A reading older than its sensor's latest by more than this is reported (`late_reading`) and not applied.
pub const DEFAULT_LATENESS: Duration = Duration::from_secs(60);
/// A reading stamped further ahead of the server's clock than this is refused (`invalid_reading` naming `time`).
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(60);
/// Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); a client opens more
/// only as others close. tonic's own default is unlimited, which bounds nothing per connection.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 200;
/// Streams the whole server may have open at once; beyond it a new stream gets RESOURCE_EXHAUSTED at once.
pub const DEFAULT_MAX_STREAMS: usize = 10_000;
/// How long after its maximum age (`--max-connection-age`, off by default) a connection is closed, whatever is
/// still open on it: grpc-go's and grpc-java's customary grace.
pub const DEFAULT_MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(10);
/// Connections the gRPC listener serves at once; RPCs on one beyond it get RESOURCE_EXHAUSTED, then GOAWAY.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Streams the server may reset for a client's protocol errors on one connection before it sends GOAWAY: hyper's
/// default (RUSTSEC-2024-0003), which tonic replaces with no limit.
pub const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Streams a client may open and reset before the server has accepted them, on one connection, before the server
/// sends GOAWAY: h2's default, the defence against rapid reset (CVE-2023-44487), set here so that it does not drift.
pub const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// The largest header list a request may send: 16 KiB, hyper's default, set here so that it does not drift.
pub const MAX_HEADER_LIST_SIZE: u32 = 16 << 10;
/// Each stream's HTTP/2 receive window: how much a client may send ahead of what the server has read on it.
/// With [`connection_window`] it is chosen for h2's budget for small DATA frames (see docs/RELIABILITY.md).
pub const STREAM_WINDOW: u32 = 256 << 10;
/// The smallest message (DATA frame payload, gRPC prefix included) that a connection with every stream full may
/// carry without tripping h2's budget for small DATA frames: a sensor reading is larger.
pub const SMALLEST_BUDGETED_FRAME: u32 = 20;

/// The connection's HTTP/2 receive window for `max_streams` streams. h2 charges each buffered DATA frame under 256
/// bytes `256 - len` against half the connection window, and sends GOAWAY when that runs out; with every stream's
/// window full of frames of [`SMALLEST_BUDGETED_FRAME`] bytes the charge is
/// `max_streams × STREAM_WINDOW / L × (256 - L)`, so the window is twice that (at most HTTP/2's 2^31 - 1). What the
/// server buffers stays bounded by the stream windows (`max_streams × STREAM_WINDOW`), not by this number.
pub fn connection_window(max_streams: u32) -> u32 {
    let l = u64::from(SMALLEST_BUDGETED_FRAME);
    let charge = u64::from(max_streams.max(1)) * u64::from(STREAM_WINDOW) / l * (256 - l);
    u32::try_from(2 * charge).unwrap_or(i32::MAX as u32).min(i32::MAX as u32)
}

/// HTTP/2 keepalive ping interval: finds a peer that vanished without closing.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a keepalive ping may go unanswered before the connection is closed and its streams freed.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// After the grace period, how long the server waits for streams to flush and connections to close before it
/// stops anyway (tonic's own graceful shutdown would wait for every connection, health watchers included).
pub const SHUTDOWN_HARD_DEADLINE: Duration = Duration::from_secs(2);

/// What `serve` needs besides its listeners and rules.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Inbound messages (and HTTP bodies) over this many bytes are refused with RESOURCE_EXHAUSTED (HTTP 413).
    pub max_message_size: usize,
    /// A stream tracks at most this many sensors.
    pub max_sensors_per_stream: usize,
    /// How far behind its sensor's latest a reading may be and still be applied.
    pub lateness: Duration,
    /// How far ahead of the server's clock a reading's time may be.
    pub max_future: Duration,
    /// Streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Streams the server may have open at once, over every connection.
    pub max_streams: usize,
    /// Connection age, its grace, and the cap on connections.
    pub connections: ConnectionPolicy,
    /// Readings a second one stream may send; 0 is no limit.
    pub max_readings_per_second: u32,
    /// How long open streams are served after a shutdown signal before they end UNAVAILABLE.
    pub shutdown_grace: Duration,
    /// HTTP/2 keepalive ping interval.
    pub keepalive_interval: Duration,
    /// HTTP/2 keepalive ping timeout.
    pub keepalive_timeout: Duration,
    /// Where the server's time comes from: the system clock, or a manual one in tests.
    pub clock: Clock,
    /// TLS and bearer tokens; none by default.
    pub security: Security,
    /// Prometheus metrics; off by default (`--metrics-listen` turns them on).
    pub telemetry: Telemetry,
    /// Where alerts go besides their stream; none by default.
    pub sinks: Sinks,
    /// Where sensor states outlive their streams (`--state-dir`); off: state lives with its stream.
    pub states: SensorStates,
}

/// Who may connect and call: TLS (with mutual TLS when its configuration asks for client certificates) and bearer
/// tokens, each live, so that a reload rotates them without a restart.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// TLS on both listeners; `None` serves plaintext.
    pub tls: Option<LiveTls>,
    /// The bearer tokens every `alertstream.v1` call and protected HTTP route needs; `None` lets everyone in.
    pub tokens: Option<LiveTokens>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_sensors_per_stream: DEFAULT_MAX_SENSORS_PER_STREAM,
            lateness: DEFAULT_LATENESS,
            max_future: DEFAULT_MAX_FUTURE,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_streams: DEFAULT_MAX_STREAMS,
            connections: ConnectionPolicy {
                max_age: None,
                max_age_grace: DEFAULT_MAX_CONNECTION_AGE_GRACE,
                max_connections: DEFAULT_MAX_CONNECTIONS,
            },
            max_readings_per_second: 0,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            clock: Clock::System,
            security: Security::default(),
            telemetry: Telemetry::off(),
            sinks: Sinks::default(),
            states: SensorStates::default(),
        }
    }
}

/// The embedded default rules, compiled (through the same loader as a rules file).
pub fn default_rules() -> RuleSet {
    alertstream_rules::parse("<default rules>", DEFAULT_RULES)
        .map(|file| file.rules)
        .unwrap_or_else(|e| unreachable!("the embedded default rules are valid: {e}"))
}

#[cfg(test)]
mod tests {
    use alertstream_engine::Severity;

    use super::*;

    #[test]
    fn the_default_rules_are_the_classic_thresholds() {
        let rules = default_rules();
        let shown: Vec<(&str, Option<&str>, Option<&str>, Severity)> = rules
            .rules()
            .iter()
            .map(|r| {
                let spec = r.spec();
                (r.name(), spec.condition.as_deref(), spec.message.as_deref(), spec.severity)
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("temp_too_low", Some("temperature < 10"), Some("temp too low"), Severity::Warning),
                ("ph_too_high", Some("pH > 5.5"), Some("pH too high"), Severity::Warning),
            ]
        );
    }
}
