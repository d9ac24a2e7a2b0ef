//! Protocol abuse through a real server: garbage, an HTTP/1.1 request and a truncated preface on the gRPC port;
//! 10,000 streams cancelled mid-way (gRPC interop's `cancel_after_begin` and `cancel_after_first_response`); and a
//! rules reload under load. After each, the server serves as before and has nothing left over.

mod common;

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
    time::Duration,
};

use alertstream::{
    clock::{Clock, ManualClock},
    config::{ServeConfig, default_rules},
    preface::PREFACE_TIMEOUT,
};
use common::{TestServer, brief, next_alert, open_stream, reading};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The system allocator, keeping count of the bytes this process has allocated and not yet freed: unlike the
/// resident memory, which the allocator keeps or returns as it likes, this moves only with what the code holds.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the count is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator, that is from the system allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's to choose.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated and not freed.
fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// Reads until the server closes the connection (bounded: a server that never closes fails the test).
async fn closed_by_server(tcp: &mut TcpStream) {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the server left the connection open; it sent {} bytes", sink.len());
}

/// One stream's reading answered: the server still serves.
async fn still_serves(server: &TestServer) {
    let (readings, mut alerts) = open_stream(server.channel().await).await;
    readings.send(reading("after", 1, &[("temperature", 8.0)])).await.unwrap();
    assert_eq!(brief(&next_alert(&mut alerts).await), "after 1 temp_too_low FIRING");
}

#[tokio::test]
async fn garbage_an_http1_request_and_a_truncated_preface_are_closed_and_the_server_goes_on() {
    let manual = ManualClock::new(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    let config = ServeConfig { clock: Clock::Manual(manual.clone()), ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let http1 = b"POST /alertstream.v1.AlertService/Evaluate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec();
    for bytes in [garbage, http1] {
        let mut tcp = TcpStream::connect(server.grpc_addr).await.unwrap();
        tcp.write_all(&bytes).await.unwrap();
        closed_by_server(&mut tcp).await;
    }
    // Half the preface, then nothing: hyper would wait forever; the server closes it once its clock passes the
    // preface deadline.
    let mut tcp = TcpStream::connect(server.grpc_addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // A round trip on another connection: the half-preface connection has been accepted and is being waited on.
    still_serves(&server).await;
    manual.advance(PREFACE_TIMEOUT);
    closed_by_server(&mut tcp).await;
    still_serves(&server).await;
}

/// Tasks alive in this runtime (the server's and the clients').
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// File descriptors open in this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits (at most 30 s) until `now()` is at most `limit`, and returns the last value seen.
async fn settles_to(what: &str, limit: usize, now: impl Fn() -> usize) -> usize {
    let settled = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if now() <= limit {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "{what} stayed at {} (baseline {limit})", now());
    now()
}

const CONNECTIONS: usize = 5;
/// Streams per connection at once: the server's default cap per connection.
const PER_CONNECTION: usize = 200;

/// Opens `CONNECTIONS × PER_CONNECTION` streams at once and cancels each: half right after the server accepted it
/// (`cancel_after_begin`), half after their first alert (`cancel_after_first_response`).
async fn open_and_cancel(channels: &[tonic::transport::Channel], round: u64) {
    let mut streams = tokio::task::JoinSet::new();
    for (c, channel) in channels.iter().enumerate() {
        for s in 0..PER_CONNECTION {
            let channel = channel.clone();
            streams.spawn(async move {
                let (readings, mut alerts) = open_stream(channel).await;
                if s % 2 == 1 {
                    let sensor = format!("c{c}s{s}");
                    readings.send(reading(&sensor, round + 1, &[("temperature", 8.0)])).await.unwrap();
                    assert_eq!(
                        brief(&next_alert(&mut alerts).await),
                        format!("{sensor} {} temp_too_low FIRING", round + 1)
                    );
                }
                // Dropping both halves cancels the call: the client sends RST_STREAM(CANCEL).
                drop((readings, alerts));
            });
        }
    }
    while let Some(done) = streams.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streams_cancelled_midway_leave_no_task_fd_or_memory_behind() {
    let server = TestServer::start().await;
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(server.channel().await);
    }
    // Warm-up rounds grow every lazily grown buffer and pool to what 1,000 streams at once need; the baseline is
    // taken after them.
    for round in 0..3 {
        open_and_cancel(&channels, round).await;
    }
    let tasks = settles_to("alive tasks after the warm-up", alive_tasks(), alive_tasks).await;
    let (fds, live) = (open_fds(), live_bytes());
    for round in 3..13 {
        open_and_cancel(&channels, round).await;
    }
    let tasks_after = settles_to("alive tasks", tasks, alive_tasks).await;
    let fds_after = settles_to("open file descriptors", fds, open_fds).await;
    // 10,000 streams: a leak of 200 bytes a stream would be 2 MB. (Measured: within a megabyte of the baseline,
    // either side, as buffers are freed a little earlier or later.)
    let in_use = || usize::try_from(live_bytes()).unwrap_or(0);
    let limit = usize::try_from(live).unwrap_or(0) + (2 << 20);
    settles_to("memory in use (bytes)", limit, in_use).await;
    assert!(tasks_after <= tasks && fds_after <= fds);
    still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_reload_under_load_loses_no_alert_and_repeats_none() {
    let server = TestServer::start().await;
    // The default rules, and the same with a rule that never fires: `temp_too_low` is unchanged in both, so every
    // reload keeps its state and owes no alert.
    let plain = Arc::new(default_rules());
    let mut specs: Vec<_> = plain.rules().iter().map(|r| r.spec().clone()).collect();
    specs.push(alertstream_engine::RuleSpec {
        name: "never".to_owned(),
        condition: Some("temperature > 1000".to_owned()),
        ..Default::default()
    });
    let with_extra = Arc::new(alertstream_engine::RuleSet::new(specs).unwrap());
    const STREAMS: usize = 8;
    const READINGS: u64 = 1_000;
    /// Readings each stream is sent between two reloads.
    const BETWEEN: u64 = 20;
    let mut senders = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..STREAMS {
        let (readings, alerts) = open_stream(server.channel().await).await;
        senders.push(readings);
        answers.push(tokio::spawn(common::collect(alerts)));
    }
    // Readings go out in rounds, a reload after each: 50 reloads while every stream is busy.
    let mut reloads = 0;
    for round in 0..READINGS / BETWEEN {
        for (s, readings) in senders.iter().enumerate() {
            for seq in round * BETWEEN + 1..=(round + 1) * BETWEEN {
                let temperature = if seq % 2 == 1 { 5.0 } else { 20.0 };
                readings.send(reading(&format!("s{s}"), seq, &[("temperature", temperature)])).await.unwrap();
            }
        }
        let next = if reloads % 2 == 0 { Arc::clone(&with_extra) } else { Arc::clone(&plain) };
        server.rules.send_replace(next);
        reloads += 1;
    }
    drop(senders);
    // Each reading crosses the threshold one way or the other: one alert each, in order, none lost or repeated.
    for (s, answer) in answers.into_iter().enumerate() {
        let (alerts, status) = answer.await.unwrap();
        assert!(status.is_ok(), "{status:?}");
        let expected: Vec<String> = (1..=READINGS)
            .map(|seq| format!("s{s} {seq} temp_too_low {}", if seq % 2 == 1 { "FIRING" } else { "RESOLVED" }))
            .collect();
        assert_eq!(alerts.iter().map(brief).collect::<Vec<_>>(), expected);
    }
    assert_eq!(reloads, READINGS / BETWEEN);
}
