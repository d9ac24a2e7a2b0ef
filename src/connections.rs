//! Serving the gRPC listener's connections, one task each, with the connection policies tonic's server cannot
//! apply (`--max-connection-age` with its grace, `--max-connections`), over tonic's routes and hyper's HTTP/2.
//!
//! Each admitted connection has its own [`Farewells`] channel, carried to its requests as an extension: at its
//! maximum age (±10 % jitter, so that connections made together do not all leave together) the connection is sent
//! a graceful GOAWAY first, then its streams are told through their loops, flush their alerts and end UNAVAILABLE;
//! after the grace the connection is closed whatever is left on it. The task also forwards the server's shutdown
//! into the channel, so a stream loop watches one channel for both.
//!
//! A connection beyond `--max-connections` is not left waiting in the accept queue: its RPCs are answered
//! RESOURCE_EXHAUSTED, and after the first one (or [`REFUSAL_LINGER`] without any) it is sent GOAWAY. At most
//! [`MAX_REFUSING`] such connections are answered at once; beyond that a new one is closed at once, so a flood of
//! connections costs sockets for moments, not for the linger.
//!
//! A connection whose HTTP/2 preface has not arrived within [`PREFACE_TIMEOUT`] is closed (hyper would wait for
//! it forever).
//!
//! Timers of the policies run on the server's [`Clock`], so tests move them without sleeping.

use std::{
    convert::Infallible,
    io,
    pin::pin,
    sync::{Arc, atomic::Ordering},
    time::{Duration, SystemTime},
};

use http::{Request, Response};
use hyper::{body::Incoming, server::conn::http2};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Status, body::Body, transport::server::Connected as _};
use tower::{Service, ServiceExt as _};

use crate::{
    accept::Conn,
    clock::Clock,
    farewell::{ConnectionFarewells, Farewell, Farewells},
    preface::{PREFACE_TIMEOUT, PrefaceWatch},
    telemetry::Telemetry,
};

/// How long a connection beyond `--max-connections` waits for an RPC to refuse before it is sent GOAWAY anyway,
/// and then how long it may take to close.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(10);
/// Connections beyond `--max-connections` answered (RESOURCE_EXHAUSTED, then GOAWAY) at once; more are closed at once.
pub const MAX_REFUSING: usize = 1024;

/// The connection policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPolicy {
    /// After this age (±10 %), a connection is sent GOAWAY and its streams end UNAVAILABLE; `None` is off.
    pub max_age: Option<Duration>,
    /// How long after its maximum age a connection is closed, whatever is still open on it.
    pub max_age_grace: Duration,
    /// Connections the server serves at once; RPCs on one beyond it get RESOURCE_EXHAUSTED, then GOAWAY.
    pub max_connections: usize,
}

/// What every connection task shares.
struct Shared<S> {
    routes: S,
    http2: http2::Builder<TokioExecutor>,
    policy: ConnectionPolicy,
    clock: Clock,
    /// The server's shutdown, forwarded into each connection's farewells.
    shutdown: Farewells,
    /// Cancelled when the server stops accepting: every connection is sent GOAWAY.
    draining: CancellationToken,
    /// Cancelled when the server gives up waiting: every connection is closed.
    terminate: CancellationToken,
    /// One permit per connection the server may serve at once.
    admissions: Arc<Semaphore>,
    /// Counts open connections.
    telemetry: Telemetry,
    /// One permit per connection over the cap being answered.
    refusing: Arc<Semaphore>,
}

/// The gRPC listener's server: serves `routes` on each accepted connection.
pub struct GrpcConnections<S> {
    shared: Arc<Shared<S>>,
    tasks: TaskTracker,
}

impl<S> GrpcConnections<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    /// A server of `routes` with the HTTP/2 settings of `http2`. `shutdown` is the server's second shutdown phase;
    /// when `terminate` is cancelled, every connection still open is closed. Open connections are counted in
    /// `telemetry`.
    pub fn new(
        routes: S,
        http2: http2::Builder<TokioExecutor>,
        policy: ConnectionPolicy,
        clock: Clock,
        shutdown: Farewells,
        terminate: CancellationToken,
        telemetry: Telemetry,
    ) -> Self {
        let admissions = Arc::new(Semaphore::new(policy.max_connections));
        let shared = Shared {
            routes,
            http2,
            policy,
            clock,
            shutdown,
            draining: CancellationToken::new(),
            terminate,
            telemetry,
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            admissions,
        };
        Self { shared: Arc::new(shared), tasks: TaskTracker::new() }
    }

    /// Serves every connection of `incoming`; when it ends (the server stopped accepting), sends every connection
    /// GOAWAY and returns once all of them have closed.
    pub async fn serve(self, incoming: impl Stream<Item = io::Result<Conn>>) {
        let mut incoming = pin!(incoming);
        while let Some(accepted) = incoming.next().await {
            let Ok(conn) = accepted else { continue };
            let shared = Arc::clone(&self.shared);
            match Arc::clone(&self.shared.admissions).try_acquire_owned() {
                Ok(admission) => self.tasks.spawn(serve_admitted(conn, shared, admission)),
                Err(_) => match Arc::clone(&self.shared.refusing).try_acquire_owned() {
                    Ok(refusing) => self.tasks.spawn(refuse(conn, shared, refusing)),
                    Err(_) => {
                        tracing::debug!("Connection over the cap while many are being refused: closed at once.");
                        continue;
                    }
                },
            };
        }
        self.shared.draining.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Serves one admitted connection until it closes, the grace after its maximum age runs out, or the server
/// terminates it. `admission` is its place under `--max-connections`, given back as it closes.
async fn serve_admitted<S>(conn: Conn, shared: Arc<Shared<S>>, admission: OwnedSemaphorePermit)
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let peer = conn.connect_info();
    let (farewell, farewells) = watch::channel(None);
    let routes = shared.routes.clone().map_request({
        let peer = peer.clone();
        move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer.clone());
            request.extensions_mut().insert(ConnectionFarewells(farewells.clone()));
            request
        }
    });
    let (conn, preface_arrived) = PrefaceWatch::new(conn);
    let mut connection = pin!(shared.http2.serve_connection(TokioIo::new(conn), TowerToHyperService::new(routes)));
    // Declared after the connection, so dropped before it: the place is free by the time the socket closes.
    let _admission = admission;
    let _open = shared.telemetry.connection_opened();
    let clock = &shared.clock;
    let preface_due = Some(clock.now() + PREFACE_TIMEOUT);
    let mut awaiting_preface = true;
    let aged_at = shared.policy.max_age.map(|age| clock.now() + jittered(age));
    let mut close_at: Option<SystemTime> = None;
    let mut sent_goaway = false;
    let mut shutdown = shared.shutdown.clone();
    let mut watching_shutdown = true;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(peer = ?peer.remote_addr(), %error, "Connection ended with an error.");
                }
                return;
            }
            () = sleep_until(clock, preface_due), if awaiting_preface => {
                if !preface_arrived.load(Ordering::Acquire) {
                    tracing::debug!(peer = ?peer.remote_addr(), "No HTTP/2 preface in time: closing the connection.");
                    return;
                }
                awaiting_preface = false;
            }
            () = shared.draining.cancelled(), if !sent_goaway => {
                connection.as_mut().graceful_shutdown();
                sent_goaway = true;
            }
            () = sleep_until(clock, aged_at), if close_at.is_none() => {
                tracing::debug!(peer = ?peer.remote_addr(), "Connection reached its maximum age: GOAWAY, then its \
                    streams end UNAVAILABLE.");
                // GOAWAY first, so a client learns not to start streams here before its streams end.
                if !sent_goaway {
                    connection.as_mut().graceful_shutdown();
                    sent_goaway = true;
                }
                if farewell.borrow().is_none() {
                    farewell.send_replace(Some(Farewell::ConnectionAged));
                }
                close_at = Some(clock.now() + shared.policy.max_age_grace);
            }
            () = sleep_until(clock, close_at) => {
                tracing::debug!(peer = ?peer.remote_addr(), "Connection still open after its maximum age and grace: \
                    closing it.");
                return;
            }
            changed = shutdown.changed(), if watching_shutdown => match changed {
                Ok(()) => {
                    if let Some(why) = *shutdown.borrow_and_update() {
                        farewell.send_replace(Some(why));
                    }
                }
                Err(_) => watching_shutdown = false,
            },
            () = shared.terminate.cancelled() => return,
        }
    }
}

/// Serves a connection beyond `--max-connections`: its RPCs get RESOURCE_EXHAUSTED, and after the first one (or
/// [`REFUSAL_LINGER`]) it is sent GOAWAY and given as long again to close.
async fn refuse<S>(conn: Conn, shared: Arc<Shared<S>>, _refusing: OwnedSemaphorePermit) {
    let max_connections = shared.policy.max_connections;
    tracing::debug!(peer = ?conn.connect_info().remote_addr(), max_connections, "Connection over the cap: refusing \
        its RPCs.");
    let refused = Arc::new(Notify::new());
    let refusal = tower::service_fn({
        let refused = Arc::clone(&refused);
        move |_: Request<Incoming>| {
            refused.notify_one();
            let status = Status::resource_exhausted(format!(
                "too many connections: this server serves at most {max_connections} at once; retry later or elsewhere"
            ));
            std::future::ready(Ok::<_, Infallible>(status.into_http::<Body>()))
        }
    });
    let mut connection = pin!(shared.http2.serve_connection(TokioIo::new(conn), TowerToHyperService::new(refusal)));
    let clock = &shared.clock;
    tokio::select! {
        _ = connection.as_mut() => return,
        () = refused.notified() => {}
        () = sleep_until(clock, Some(clock.now() + REFUSAL_LINGER)) => {}
        () = shared.terminate.cancelled() => return,
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        () = sleep_until(clock, Some(clock.now() + REFUSAL_LINGER)) => {}
        () = shared.terminate.cancelled() => {}
    }
}

/// `age` with ±10 % jitter.
fn jittered(age: Duration) -> Duration {
    age.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// Completes when `clock` reaches `deadline`; never when there is none.
async fn sleep_until(clock: &Clock, deadline: Option<SystemTime>) {
    match deadline {
        Some(deadline) => clock.sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let age = Duration::from_secs(100);
        let ages: Vec<Duration> = (0..1000).map(|_| jittered(age)).collect();
        assert!(ages.iter().all(|a| (Duration::from_secs(90)..=Duration::from_secs(110)).contains(a)));
        // Spread, not one value.
        let (min, max) = (ages.iter().min().unwrap(), ages.iter().max().unwrap());
        assert!(*max - *min > Duration::from_secs(10), "{min:?}..{max:?}");
    }
}
