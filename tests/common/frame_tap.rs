//! A loopback TCP proxy in front of a server that records the HTTP/2 frames the server sends (their type, flags and
//! stream) and when the server closes the connection, so a test can assert the order of what happens on the wire.
//! Plaintext only; it forwards every byte unchanged both ways.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};

/// A frame's type (RFC 9113 section 6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const GOAWAY: u8 = 0x7;
/// The END_STREAM flag of DATA and HEADERS frames.
pub const END_STREAM: u8 = 0x1;

/// What the tap saw the server do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A frame: its type, flags, stream and payload length.
    Frame { kind: u8, flags: u8, stream: u32, len: usize },
    /// The server closed its side of the connection.
    Closed,
}

impl Event {
    /// Whether this is a frame of `kind`.
    pub fn is(&self, wanted: u8) -> bool {
        matches!(self, Event::Frame { kind, .. } if *kind == wanted)
    }

    /// Whether this is the frame that ends `stream` (trailers, or the last DATA).
    pub fn ends(&self, wanted: u32) -> bool {
        matches!(self, Event::Frame { kind: DATA | HEADERS, flags, stream, .. }
            if *stream == wanted && flags & END_STREAM != 0)
    }
}

/// The proxy: connect clients to `addr`; it serves one connection.
pub struct FrameTap {
    pub addr: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    seen: Arc<Notify>,
}

impl FrameTap {
    /// A tap in front of the server at `server`, for one client connection.
    pub async fn start(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Notify::new());
        let (recorded, notify) = (Arc::clone(&events), Arc::clone(&seen));
        tokio::spawn(async move {
            let (client, _) = listener.accept().await.unwrap();
            let upstream = TcpStream::connect(server).await.unwrap();
            let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = upstream.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                let _ = server_write.shutdown().await;
            });
            let mut pending = Vec::new();
            let mut chunk = vec![0u8; 64 << 10];
            loop {
                let n = server_read.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    recorded.lock().unwrap().push(Event::Closed);
                    notify.notify_waiters();
                    let _ = client_write.shutdown().await;
                    return;
                }
                pending.extend_from_slice(&chunk[..n]);
                record_frames(&mut pending, &recorded);
                notify.notify_waiters();
                if client_write.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
            }
        });
        Self { addr, events, seen }
    }

    /// Everything seen so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Waits (at most 30 s) until the events seen satisfy `done`, and returns them.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let wait = async {
            loop {
                let notified = self.seen.notified();
                let events = self.events();
                if done(&events) {
                    return events;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("the tap never saw {what}: {:?}", self.events()))
    }

    /// The index of the first event that satisfies `which`.
    pub fn position(events: &[Event], which: impl Fn(&Event) -> bool) -> Option<usize> {
        events.iter().position(which)
    }
}

/// Moves every complete frame at the front of `pending` into `events`.
fn record_frames(pending: &mut Vec<u8>, events: &Mutex<Vec<Event>>) {
    let mut at = 0;
    while pending.len() - at >= 9 {
        let header = &pending[at..at + 9];
        let len = (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
        if pending.len() - at < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
        events.lock().unwrap().push(Event::Frame { kind: header[3], flags: header[4], stream, len });
        at += 9 + len;
    }
    pending.drain(..at);
}
