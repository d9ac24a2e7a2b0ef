//! Accepting connections: TCP with TCP_NODELAY, then, when TLS is on, the handshake with the live certificate. The
//! same stream of connections feeds the gRPC server (tonic) and the HTTP endpoint (axum).
//!
//! Handshakes run side by side, each bounded by [`HANDSHAKE_TIMEOUT`], so a client that connects and says nothing
//! holds up no one. A failed handshake (a plaintext client, a client without a valid certificate under mutual TLS)
//! is logged at debug and closed. An accept error (out of file descriptors, say) is logged and retried after a
//! pause, never the end of the server.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::{Stream, StreamExt as _, wrappers::TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::tls::TlsConfigs;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait after an accept error before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// One accepted connection, in plaintext or TLS.
#[derive(Debug)]
pub enum Conn {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP, after the handshake.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Which of the live configurations a listener uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The gRPC listener: ALPN `h2`.
    Grpc,
    /// The HTTP/JSON listener: ALPN `h2` and `http/1.1`.
    Http,
}

/// The connections accepted on `listeners` (every address a listen address resolved to) until `stop` is cancelled,
/// through TLS when `tls` is given. When the stream ends, the listeners are dropped, so new connections are refused
/// at once.
pub fn connections(
    listeners: Vec<TcpListener>,
    tls: Option<watch::Receiver<Arc<TlsConfigs>>>,
    protocol: Protocol,
    stop: CancellationToken,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    // One stream of accepted sockets over every listener.
    let mut accepted: Pin<Box<dyn Stream<Item = io::Result<TcpStream>> + Send>> = Box::pin(tokio_stream::empty());
    for listener in listeners {
        accepted = Box::pin(accepted.merge(TcpListenerStream::new(listener)));
    }
    async_stream::stream! {
        let mut handshakes = JoinSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some(accepted) = accepted.next() => match accepted {
                    Ok(tcp) => {
                        // A peer already gone: nothing to serve.
                        let Ok(peer) = tcp.peer_addr() else { continue };
                        // Nagle's algorithm would hold every small alert back.
                        let _ = tcp.set_nodelay(true);
                        match &tls {
                            None => yield Ok(Conn::Plain(tcp)),
                            Some(tls) => {
                                let config = match protocol {
                                    Protocol::Grpc => Arc::clone(&tls.borrow().grpc),
                                    Protocol::Http => Arc::clone(&tls.borrow().http),
                                };
                                handshakes.spawn(handshake(tcp, peer, config));
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "Cannot accept a connection; retrying.");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                Some(done) = handshakes.join_next() => {
                    if let Ok(Some(conn)) = done {
                        yield Ok(conn);
                    }
                }
            }
        }
    }
}

/// The TLS handshake of one connection, or `None` (logged) when it fails or takes too long.
async fn handshake(tcp: TcpStream, peer: SocketAddr, config: Arc<ServerConfig>) -> Option<Conn> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(tcp)).await {
        Ok(Ok(tls)) => Some(Conn::Tls(Box::new(tls))),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed.");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out.");
            None
        }
    }
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tcp().connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(tcp) => tcp.is_write_vectored(),
            Conn::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The accepted connections as an axum listener, for the HTTP endpoint.
pub struct ConnListener<S> {
    connections: Pin<Box<S>>,
    local_addr: SocketAddr,
}

impl<S> ConnListener<S> {
    /// A listener over `connections`, which were accepted on `local_addr`.
    pub fn new(connections: S, local_addr: SocketAddr) -> Self {
        Self { connections: Box::pin(connections), local_addr }
    }
}

impl<S> axum::serve::Listener for ConnListener<S>
where
    S: Stream<Item = io::Result<Conn>> + Send + 'static,
{
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tokio_stream::StreamExt as _;
        loop {
            match self.connections.next().await {
                Some(Ok(conn)) => {
                    let peer = conn.tcp().peer_addr().unwrap_or(self.local_addr);
                    return (conn, peer);
                }
                Some(Err(_)) => {}
                // Stopped accepting: axum's graceful shutdown ends the accept loop.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
