//! The soak: many streams for a long time against one alertstream process, with reconnects, cancels, stalls and
//! bad input mixed in, while the server's resident memory, open file descriptors, threads and tasks are sampled.
//! Nothing should grow: what a stream or connection takes, its end gives back.
//!
//! Each of `streams` workers loops over stream lifetimes until the time is up. A lifetime sends a few dozen
//! readings, paced, and is one of four kinds, in turn: clean (half-close, read every alert, expect OK), cancelled
//! mid-way (both halves dropped after some readings), stalled (stops reading its alerts for a while as it goes on
//! sending, then reads them all), and bad input (a reading with a NaN value among the rest, answered in-band by
//! `invalid_reading`). Every tenth lifetime starts on a new connection. A clean lifetime that loses or repeats an
//! alert fails the run.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    BoxError,
    client::connect,
    pb::{self, alert_service_client::AlertServiceClient},
    readings::{METRIC, reading},
    server::{Server, ServerProcess},
};

/// How often the server's figures are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Readings a lifetime sends.
const READINGS_PER_LIFETIME: u64 = 40;
/// The pause between two readings of a stream.
const PACE: Duration = Duration::from_millis(25);
/// How long a stalled lifetime leaves its alerts unread.
const STALL: Duration = Duration::from_secs(2);
/// The `seq` of the bad reading a lifetime of that kind sends half-way.
const BAD_SEQ: u64 = 1_000_000;

/// The server's figures at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the start.
    pub at: f64,
    /// Resident memory, KiB.
    pub rss_kib: f64,
    /// Open file descriptors.
    pub fds: usize,
    /// OS threads.
    pub threads: usize,
    /// Tokio tasks alive, and streams open, from the server's own `Load.` log line (the latest one).
    pub tasks: Option<u64>,
    /// Streams open, from the same line.
    pub streams: Option<u64>,
    /// Stream lifetimes finished so far, over all workers.
    pub lifetimes: u64,
}

/// What the workers count as they go.
#[derive(Debug, Default)]
struct Counts {
    lifetimes: AtomicU64,
    readings: AtomicU64,
    alerts: AtomicU64,
}

/// Starts alertstream (beside this executable), runs the soak for `seconds` with `streams` workers, prints a row
/// per sample, and returns the samples.
pub async fn run(streams: usize, seconds: u64) -> Result<Vec<Sample>, BoxError> {
    let server = ServerProcess::start(Server::Alertstream, None)?;
    let addr = server.addr();
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..streams {
        let (counts, stop) = (Arc::clone(&counts), Arc::clone(&stop));
        workers.spawn(async move { work(addr, worker, &counts, &stop).await });
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    println!("| s | RSS MiB | fds | threads | tasks | open streams | lifetimes |");
    println!("|---|---|---|---|---|---|---|");
    loop {
        let sample = sample(&server, start, &counts)?;
        println!(
            "| {:.0} | {:.1} | {} | {} | {} | {} | {} |",
            sample.at,
            sample.rss_kib / 1024.0,
            sample.fds,
            sample.threads,
            sample.tasks.map_or("?".to_owned(), |t| t.to_string()),
            sample.streams.map_or("?".to_owned(), |s| s.to_string()),
            sample.lifetimes
        );
        samples.push(sample);
        if start.elapsed() >= Duration::from_secs(seconds) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
            Some(done) = workers.join_next() => done??,
        }
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = workers.join_next().await {
        done??;
    }
    println!(
        "{} lifetimes, {} readings, {} alerts",
        counts.lifetimes.load(Ordering::Relaxed),
        counts.readings.load(Ordering::Relaxed),
        counts.alerts.load(Ordering::Relaxed)
    );
    // From the first sample under load (the second: the first is taken as the workers start) to the last.
    if let (Some(first), Some(last)) = (samples.get(1), samples.last()) {
        let most = |f: fn(&Sample) -> f64| samples[1..].iter().map(f).fold(f64::MIN, f64::max);
        println!(
            "from {:.0} s to {:.0} s: RSS {:.1} -> {:.1} MiB (at most {:.1}), fds {} -> {} (at most {}), threads {} -> {}, \
             tasks {} -> {}",
            first.at,
            last.at,
            first.rss_kib / 1024.0,
            last.rss_kib / 1024.0,
            most(|s| s.rss_kib) / 1024.0,
            first.fds,
            last.fds,
            most(|s| s.fds as f64),
            first.threads,
            last.threads,
            first.tasks.map_or("?".to_owned(), |t| t.to_string()),
            last.tasks.map_or("?".to_owned(), |t| t.to_string()),
        );
    }
    Ok(samples)
}

fn sample(server: &ServerProcess, start: Instant, counts: &Counts) -> Result<Sample, BoxError> {
    let pid = server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<f64> {
        status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    let load = server.load();
    Ok(Sample {
        at: start.elapsed().as_secs_f64(),
        rss_kib: field("VmRSS:").ok_or("no VmRSS")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        threads: field("Threads:").ok_or("no Threads")? as usize,
        tasks: load.map(|l| l.tasks),
        streams: load.map(|l| l.streams),
        lifetimes: counts.lifetimes.load(Ordering::Relaxed),
    })
}

/// One worker's loop of stream lifetimes, until `stop`.
async fn work(addr: SocketAddr, worker: usize, counts: &Counts, stop: &AtomicBool) -> Result<(), BoxError> {
    let mut client = AlertServiceClient::new(connect(addr).await?);
    let mut lifetime: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        if lifetime > 0 && lifetime.is_multiple_of(10) {
            client = AlertServiceClient::new(connect(addr).await?);
        }
        let sensor = format!("w{worker}-{lifetime}");
        // Start the workers' kinds apart, so that the mix is even at every moment.
        let kind = (lifetime + worker as u64) % 4;
        let (tx, rx) = mpsc::channel(8);
        let mut alerts = client.stream(ReceiverStream::new(rx)).await?.into_inner();
        let mut answered = Vec::new();
        let mut sent = 0;
        for seq in 1..=READINGS_PER_LIFETIME {
            // Round `seq - 1`: the first reading fires the default rule, each next one resolves or fires it.
            let mut batch = vec![reading(&sensor, seq - 1, seq)];
            if kind == 3 && seq == READINGS_PER_LIFETIME / 2 {
                // Bad input: one more reading, with a NaN, answered in-band; the rule's state is untouched.
                let mut bad = reading(&sensor, seq, BAD_SEQ);
                bad.values = HashMap::from([(METRIC.to_owned(), f64::NAN)]);
                batch.push(bad);
            }
            for next in batch {
                tx.send(next).await?;
                sent += 1;
                if kind != 2 {
                    answered.push(alerts.message().await?.ok_or("the stream ended early")?);
                }
            }
            if kind == 1 && seq == READINGS_PER_LIFETIME / 2 {
                // Cancelled mid-way: both halves dropped.
                break;
            }
            if kind == 2 && seq == READINGS_PER_LIFETIME / 4 {
                // Stalled: reads nothing for a while, as it goes on sending.
                tokio::time::sleep(STALL).await;
            }
            tokio::time::sleep(PACE).await;
        }
        counts.readings.fetch_add(sent, Ordering::Relaxed);
        if kind == 1 {
            counts.alerts.fetch_add(answered.len() as u64, Ordering::Relaxed);
        } else {
            drop(tx);
            while let Some(alert) = alerts.message().await? {
                answered.push(alert);
            }
            counts.alerts.fetch_add(answered.len() as u64, Ordering::Relaxed);
            check(&sensor, kind, &answered)?;
        }
        counts.lifetimes.fetch_add(1, Ordering::Relaxed);
        lifetime += 1;
    }
    Ok(())
}

/// Every reading of a lifetime that ran to its end is answered once, in order: by the rule, or (the NaN reading)
/// by `invalid_reading`.
fn check(sensor: &str, kind: u64, alerts: &[pb::Alert]) -> Result<(), BoxError> {
    let seqs: Vec<u64> = alerts.iter().map(|a| a.reading_seq).collect();
    let mut expected: Vec<u64> = (1..=READINGS_PER_LIFETIME).collect();
    if kind == 3 {
        expected.insert(usize::try_from(READINGS_PER_LIFETIME / 2)?, BAD_SEQ);
    }
    if seqs != expected || alerts.iter().any(|a| a.sensor_id != sensor) {
        return Err(format!("{sensor} (kind {kind}): alerts for readings {seqs:?}").into());
    }
    let invalid = alerts.iter().filter(|a| a.rule == "invalid_reading").count();
    if invalid != usize::from(kind == 3) {
        return Err(format!("{sensor} (kind {kind}): {invalid} invalid_reading alerts").into());
    }
    Ok(())
}
