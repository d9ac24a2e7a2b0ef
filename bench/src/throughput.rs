//! Throughput: S streams over C connections, each sending its readings as fast as flow control allows while reading
//! its alerts. Every reading yields exactly one alert (see [`crate::readings`]); each stream checks each alert's
//! sensor and per-sensor order as it arrives ([`crate::codec`]) and its count at the end, and fails otherwise.
//!
//! Beside readings per second it reports CPU per reading: the load generator's own, and the server's when its pid
//! is known. Both are measured over the same span, after the readings are encoded and the connections open.

use std::{fmt, net::SocketAddr, time::Instant};

use crate::{
    BoxError, client,
    codec::Checker,
    cpu::{cpu_seconds, own_cpu_seconds},
    readings::Encoded,
};

/// What one throughput run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Concurrent streams.
    pub streams: usize,
    /// Connections they share (stream `s` on connection `s % connections`); at least 1.
    pub connections: usize,
    /// Readings each stream sends.
    pub readings: u64,
    /// Distinct sensors on each stream: reading `k` is of sensor `k % sensors`.
    pub sensors: u64,
}

/// The figures of one throughput run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Readings sent, each answered by one alert.
    pub readings: u64,
    /// Seconds from the first stream's start to the last alert.
    pub seconds: f64,
    /// CPU seconds the load generator used over that span.
    pub client_cpu_seconds: f64,
    /// CPU seconds the server used over that span, when its pid was given.
    pub server_cpu_seconds: Option<f64>,
}

impl Throughput {
    /// Readings per second.
    pub fn rate(&self) -> f64 {
        self.readings as f64 / self.seconds
    }

    /// The load generator's CPU microseconds per reading.
    pub fn client_cpu_us(&self) -> f64 {
        self.client_cpu_seconds * 1e6 / self.readings as f64
    }

    /// The server's CPU microseconds per reading, when measured.
    pub fn server_cpu_us(&self) -> Option<f64> {
        self.server_cpu_seconds.map(|s| s * 1e6 / self.readings as f64)
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} readings in {:.3} s: {:.0} readings/s", self.readings, self.seconds, self.rate())?;
        if let Some(server) = self.server_cpu_us() {
            write!(f, ", server CPU {server:.2} µs/reading")?;
        }
        write!(f, ", client CPU {:.2} µs/reading", self.client_cpu_us())
    }
}

/// The sensor ids of stream `stream`.
fn sensor_ids(stream: usize, sensors: u64) -> Vec<String> {
    (0..sensors.max(1)).map(|j| format!("s{stream}-{j}")).collect()
}

/// Runs `plan` against the server at `target`; `server_pid`, when given, is the process whose CPU is measured.
pub async fn run(target: SocketAddr, plan: Plan, server_pid: Option<u32>) -> Result<Throughput, BoxError> {
    let Plan { streams, connections, readings, sensors } = plan;
    let sensors = sensors.max(1);
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        channels.push(client::connect(target).await?);
    }
    // Reading k of each stream: sensor k % sensors, its round k / sensors, seq k + 1.
    let prepared: Vec<(Vec<String>, Encoded)> = (0..streams)
        .map(|s| {
            let ids = sensor_ids(s, sensors);
            let encoded =
                Encoded::new((0..readings).map(|k| (ids[(k % sensors) as usize].as_str(), k / sensors, k + 1)));
            (ids, encoded)
        })
        .collect();

    let server_before = server_pid.and_then(cpu_seconds);
    let client_before = own_cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (s, (ids, encoded)) in prepared.into_iter().enumerate() {
        let channel = channels[s % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            let checker = Checker::new(&ids, readings);
            let mut alerts = client::open_stream(channel, tokio_stream::iter(encoded.into_slices()), checker).await?;
            let mut count = 0u64;
            while alerts.message().await?.is_some() {
                count += 1;
            }
            if count != readings {
                return Err(format!("stream {s}: {count} alerts for {readings} readings").into());
            }
            Ok::<u64, BoxError>(count)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let client_cpu_seconds = own_cpu_seconds() - client_before;
    let server_cpu_seconds = match (server_before, server_pid.and_then(cpu_seconds)) {
        (Some(before), Some(after)) => Some(after - before),
        (None, None) if server_pid.is_none() => None,
        _ => return Err(format!("cannot read the CPU time of process {server_pid:?} from /proc").into()),
    };
    Ok(Throughput { readings: total, seconds, client_cpu_seconds, server_cpu_seconds })
}
