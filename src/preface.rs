//! The client's HTTP/2 connection preface (RFC 9113 section 3.4: 24 fixed bytes, then SETTINGS), which hyper waits
//! for without a deadline: a client that connects and sends part of it, or nothing, would hold its connection, and
//! its place under `--max-connections`, for as long as it likes. [`PrefaceWatch`] notes when the preface's bytes
//! have arrived, so the connection's task can close one whose preface has not come within [`PREFACE_TIMEOUT`].

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a client has, from the accept (after TLS, when on), to send the HTTP/2 connection preface.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);

/// The length of the preface's fixed part, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`.
const PREFACE_LEN: usize = 24;

/// A connection's IO, passed through unchanged, that says when [`PREFACE_LEN`] bytes have been read from it.
#[derive(Debug)]
pub struct PrefaceWatch<T> {
    inner: T,
    read: usize,
    arrived: Arc<AtomicBool>,
}

impl<T> PrefaceWatch<T> {
    /// Watches `inner`; the flag turns `true` once the preface's bytes have been read.
    pub fn new(inner: T) -> (Self, Arc<AtomicBool>) {
        let arrived = Arc::new(AtomicBool::new(false));
        (Self { inner, read: 0, arrived: Arc::clone(&arrived) }, arrived)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PrefaceWatch<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.read < PREFACE_LEN && polled.is_ready() {
            this.read += buf.filled().len() - before;
            if this.read >= PREFACE_LEN {
                this.arrived.store(true, Ordering::Release);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PrefaceWatch<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn the_flag_turns_once_24_bytes_have_been_read_in_any_pieces() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut watched, arrived) = PrefaceWatch::new(server);
        let mut buf = [0u8; 64];
        client.write_all(&b"PRI * HTTP/2.0\r\n"[..]).await.unwrap();
        let n = watched.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"PRI * HTTP/2.0\r\n");
        assert!(!arrived.load(Ordering::Acquire), "16 bytes are not the preface");
        client.write_all(b"\r\nSM\r\n\r\nmore").await.unwrap();
        let n = watched.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"\r\nSM\r\n\r\nmore");
        assert!(arrived.load(Ordering::Acquire));
    }
}
