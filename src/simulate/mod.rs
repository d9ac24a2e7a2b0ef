//! `alertstream simulate`: N production-line sensors ([`sensor`]) at a chosen rate over M connections, one stream
//! each, printing every alert as it arrives (or, with `--summary`, only the counts and the latency from a reading's
//! send to its alert). A stream the server ends with UNAVAILABLE (its shutdown, or the connection's maximum age) or a
//! connection that fails is opened again with exponential backoff and streaming resumes. What was in flight is not
//! sent again, unless `--resume` asks the server for checkpoints: then each new stream starts with the readings its
//! sensors' last checkpoints do not cover, and an alert the server sends again is dropped ([`resume`]).

pub mod resume;
pub mod sensor;

use std::{
    collections::VecDeque,
    io::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::{
    client::endpoint,
    clock::{Clock, Stopwatch},
    convert::timestamp_text,
    pb::{self, alert_service_client::AlertServiceClient},
    service::RESUME_HEADER,
};
use resume::{Received, Resume};
use sensor::Sensor;

/// The first pause before opening a stream again; it doubles, with jitter, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause before opening a stream again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Readings a stream remembers the send time of, for the latency of their alerts.
const LATENCY_WINDOW: usize = 65_536;

/// How alerts are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One line per alert: `FIRING  line-2  temp_too_low  "temp too low"  seq=17  temperature=8.3 pH=5.1`.
    Lines,
    /// One proto3 JSON object per alert and line (proto field names, enum names).
    Json,
    /// No alert; the counts and latency percentiles at the end.
    Summary,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The server, `http://host:port`.
    pub target: String,
    /// Sensors, `line-1` … `line-N`, spread over the connections.
    pub sensors: usize,
    /// Readings a second over every sensor; 0 sends as fast as flow control allows.
    pub rate: f64,
    /// Connections, one stream each.
    pub connections: usize,
    /// Readings in all, then each stream half-closes; 0 runs until stopped.
    pub count: u64,
    /// Seed of the sensors' random draws.
    pub seed: u64,
    /// The chance, per reading and metric, that an excursion starts.
    pub excursion_rate: f64,
    /// How alerts are shown.
    pub output: Output,
    /// Resume across reconnects (`alertstream-resume: 1`): nothing lost, nothing shown twice.
    pub resume: bool,
    /// The seq of each connection's first reading; the next ones count up from it.
    pub first_seq: u64,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Readings sent.
    pub readings: u64,
    /// Alerts received.
    pub alerts: u64,
    /// Streams opened again after the server ended one or a connection failed.
    pub reconnects: u64,
    /// With `resume`: readings sent again on a new stream, and alerts the server sent again, dropped.
    pub resent: u64,
    /// With `resume`: alerts the server sent again, dropped.
    pub duplicates: u64,
    /// Latency from a reading's send to its first alert, sorted, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl Report {
    /// The latency at quantile `q` (0..=1), in microseconds.
    pub fn latency(&self, q: f64) -> Option<u64> {
        let last = self.latencies_us.len().checked_sub(1)?;
        self.latencies_us.get(((last as f64) * q).round() as usize).copied()
    }
}

/// `2000 readings, 41 alerts, 0 reconnects, 0 resent, 0 duplicates dropped; alert latency p50 180 µs, p90 240 µs,
/// p99 900 µs, max 2100 µs`.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let latency = |q| self.latency(q).map_or("-".to_owned(), |us| format!("{us} µs"));
        write!(
            f,
            "{} readings, {} alerts, {} reconnects, {} resent, {} duplicates dropped; alert latency p50 {}, p90 {}, p99 \
             {}, max {}",
            self.readings,
            self.alerts,
            self.reconnects,
            self.resent,
            self.duplicates,
            latency(0.5),
            latency(0.9),
            latency(0.99),
            latency(1.0)
        )
    }
}

/// Counts shared by the streams.
#[derive(Debug, Default)]
struct Counts {
    readings: AtomicU64,
    alerts: AtomicU64,
    reconnects: AtomicU64,
    resent: AtomicU64,
    duplicates: AtomicU64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The server refused the stream for a reason a retry does not mend.
    #[error("the server refused the stream: {code:?}: {message}")]
    Refused {
        /// The gRPC code.
        code: Code,
        /// Its message.
        message: String,
    },
    /// A stream task failed.
    #[error("a stream failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs `plan` until its count is sent and answered, or `stop` is cancelled.
///
/// # Errors
/// The server refused a stream for good (an authentication error, say).
pub async fn run(plan: Plan, stop: CancellationToken) -> Result<Report, SimulateError> {
    let counts = Arc::new(Counts::default());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    // No more connections than sensors, nor than readings to send.
    let most = match plan.count {
        0 => plan.sensors,
        count => plan.sensors.min(usize::try_from(count).unwrap_or(usize::MAX)),
    };
    let connections = plan.connections.clamp(1, most.max(1));
    let mut streams = tokio::task::JoinSet::new();
    for c in 0..connections {
        // Sensors c, c + M, c + 2M, …; the count and the rate split as evenly.
        let sensors: Vec<Sensor> = (c..plan.sensors)
            .step_by(connections)
            .map(|i| Sensor::new(format!("line-{}", i + 1), plan.seed.wrapping_add(i as u64), plan.excursion_rate))
            .collect();
        let share = |total: u64| total / connections as u64 + u64::from((c as u64) < total % connections as u64);
        let count = if plan.count == 0 { 0 } else { share(plan.count) };
        let rate = plan.rate / connections as f64;
        let (plan, counts, latencies, stop) = (plan.clone(), Arc::clone(&counts), Arc::clone(&latencies), stop.clone());
        streams.spawn(async move { stream(&plan, sensors, count, rate, &counts, &latencies, &stop).await });
    }
    while let Some(done) = streams.join_next().await {
        done??;
    }
    let mut latencies_us = std::mem::take(&mut *latencies.lock().await);
    latencies_us.sort_unstable();
    Ok(Report {
        readings: counts.readings.load(Ordering::Relaxed),
        alerts: counts.alerts.load(Ordering::Relaxed),
        reconnects: counts.reconnects.load(Ordering::Relaxed),
        resent: counts.resent.load(Ordering::Relaxed),
        duplicates: counts.duplicates.load(Ordering::Relaxed),
        latencies_us,
    })
}

/// One connection's readings, `count` of them (0: until stopped) at `rate` a second, over as many streams as it
/// takes.
async fn stream(
    plan: &Plan,
    mut sensors: Vec<Sensor>,
    count: u64,
    rate: f64,
    counts: &Counts,
    latencies: &Mutex<Vec<u64>>,
    stop: &CancellationToken,
) -> Result<(), SimulateError> {
    // The seq of the last reading sent.
    let mut seq = plan.first_seq.saturating_sub(1);
    let first = seq;
    let mut backoff = FIRST_BACKOFF;
    let mut resume = plan.resume.then(Resume::default);
    // Paced by the runtime's timer; a tick missed (backpressure) is made up by a burst, so the average holds.
    let mut pace = (rate > 0.0).then(|| {
        let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        pace
    });
    loop {
        let mut received = Vec::new();
        // What the last checkpoints did not cover goes first, unpaced.
        let mut again = resume.as_ref().map(Resume::to_send_again).unwrap_or_default();
        let outcome = match connect(&plan.target).await {
            Ok(mut client) => {
                let (readings, outbox) = mpsc::channel(64);
                let mut readings = Some(readings);
                let mut request = tonic::Request::new(ReceiverStream::new(outbox));
                if resume.is_some() {
                    request.metadata_mut().insert(RESUME_HEADER, tonic::metadata::MetadataValue::from_static("1"));
                }
                match client.stream(request).await {
                    Ok(response) => {
                        let mut alerts = response.into_inner();
                        let mut sent: VecDeque<(u64, Stopwatch)> = VecDeque::new();
                        loop {
                            if again.is_empty() && (stop.is_cancelled() || (count != 0 && seq - first >= count)) {
                                // Nothing more to send: half-close, then read what is owed.
                                readings = None;
                            }
                            let resending = !again.is_empty();
                            let next = async {
                                if let (Some(pace), false) = (pace.as_mut(), resending) {
                                    pace.tick().await;
                                }
                                match &readings {
                                    Some(readings) => readings.reserve().await.ok(),
                                    None => std::future::pending().await,
                                }
                            };
                            tokio::select! {
                                biased;
                                alert = alerts.message() => match alert {
                                    Ok(Some(alert)) => {
                                        match resume.as_mut().map(|resume| resume.received(&alert)) {
                                            Some(Received::Checkpoint) => continue,
                                            Some(Received::Duplicate) => {
                                                counts.duplicates.fetch_add(1, Ordering::Relaxed);
                                                continue;
                                            }
                                            Some(Received::New) | None => {}
                                        }
                                        if let Some(stopwatch) = first_alert(&mut sent, alert.reading_seq) {
                                            received.push(micros(stopwatch.seconds()));
                                        }
                                        counts.alerts.fetch_add(1, Ordering::Relaxed);
                                        show(plan.output, &alert);
                                    }
                                    Ok(None) => break Ok(()),
                                    Err(status) => break Err(status),
                                },
                                permit = next => {
                                    let Some(permit) = permit else { continue };
                                    if let Some(reading) = again.pop_front() {
                                        counts.resent.fetch_add(1, Ordering::Relaxed);
                                        permit.send(reading);
                                        continue;
                                    }
                                    seq += 1;
                                    let at = usize::try_from(seq - first).unwrap_or(0) % sensors.len();
                                    let sensor = &mut sensors[at];
                                    let time = Some(prost_types::Timestamp::from(Clock::System.now()));
                                    let values = sensor.read().into_iter().collect();
                                    let reading = pb::Reading { sensor_id: sensor.id.clone(), values, time, seq };
                                    if let Some(resume) = resume.as_mut() {
                                        resume.sent(&reading);
                                    }
                                    permit.send(reading);
                                    sent.push_back((seq, Stopwatch::start()));
                                    if sent.len() > LATENCY_WINDOW {
                                        sent.pop_front();
                                    }
                                    counts.readings.fetch_add(1, Ordering::Relaxed);
                                    backoff = FIRST_BACKOFF;
                                }
                            }
                        }
                    }
                    Err(status) => Err(status),
                }
            }
            Err(error) => Err(tonic::Status::unavailable(error.to_string())),
        };
        latencies.lock().await.extend(received);
        match outcome {
            Ok(()) => return Ok(()),
            Err(status)
                if retryable(status.code())
                    && !stop.is_cancelled()
                    && (count == 0 || seq - first < count || resume.as_ref().is_some_and(|r| r.unconfirmed() > 0)) =>
            {
                counts.reconnects.fetch_add(1, Ordering::Relaxed);
                let pause = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
                note(&format!(
                    "simulate: the stream ended ({:?}: {}); opening another in {} ms",
                    status.code(),
                    status.message(),
                    pause.as_millis()
                ));
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => return Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            // The stream ended UNAVAILABLE after its last reading (the server left): nothing is left to send.
            Err(status) if retryable(status.code()) => return Ok(()),
            Err(status) => {
                return Err(SimulateError::Refused { code: status.code(), message: status.message().to_owned() });
            }
        }
    }
}

async fn connect(target: &str) -> Result<AlertServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    Ok(AlertServiceClient::new(endpoint(target.to_owned())?.connect().await?))
}

fn micros(seconds: f64) -> u64 {
    // Saturating: a float-to-int `as` never wraps.
    (seconds * 1e6) as u64
}

/// Whether a stream that ended with `code` is worth opening again: the server went away or shed load.
fn retryable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::ResourceExhausted | Code::Cancelled | Code::Unknown | Code::Internal)
}

/// The send time of the reading `seq` if this is its first alert (the entry is taken, with every older one).
fn first_alert(sent: &mut VecDeque<(u64, Stopwatch)>, seq: u64) -> Option<Stopwatch> {
    while let Some(&(front, stopwatch)) = sent.front() {
        if front > seq {
            return None;
        }
        sent.pop_front();
        if front == seq {
            return Some(stopwatch);
        }
    }
    None
}

fn show(output: Output, alert: &pb::Alert) {
    let line = match output {
        Output::Summary => return,
        Output::Lines => describe(alert),
        Output::Json => alert_json(alert).to_string(),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (piped into head) is not the simulator's failure.
    let _ = writeln!(stdout, "{line}");
}

/// `FIRING  line-2  temp_too_low  "temp too low"  seq=17  temperature=8.3 pH=5.1`.
pub fn describe(alert: &pb::Alert) -> String {
    let state = pb::AlertState::try_from(alert.state).map_or("?", |s| s.as_str_name());
    let mut values: Vec<_> = alert.values.iter().collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}  {}  {}  \"{}\"  seq={}  {}",
        state.trim_start_matches("ALERT_STATE_"),
        alert.sensor_id,
        alert.rule,
        alert.message,
        alert.reading_seq,
        values.join(" ")
    )
}

/// The proto3 JSON of an alert, with proto field names and enum names.
pub fn alert_json(alert: &pb::Alert) -> serde_json::Value {
    let name = |e: Result<&'static str, ()>| e.unwrap_or("UNSPECIFIED");
    let time = alert.time.and_then(|t| std::time::SystemTime::try_from(t).ok());
    serde_json::json!({
        "sensor_id": alert.sensor_id,
        "rule": alert.rule,
        "state": name(pb::AlertState::try_from(alert.state).map(|s| s.as_str_name()).map_err(|_| ())),
        "severity": name(pb::Severity::try_from(alert.severity).map(|s| s.as_str_name()).map_err(|_| ())),
        "message": alert.message,
        "reading_seq": alert.reading_seq.to_string(),
        "time": time.map(timestamp_text),
        "values": alert.values,
    })
}

/// A line on stderr that a closed stderr does not turn into a failure.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
