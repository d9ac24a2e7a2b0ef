//! Why the server ends a stream that the client has not ended: shutdown's grace period ran out, or the stream's
//! connection reached its maximum age. Each connection has one [`Farewells`] channel that carries both (its task
//! forwards the server's shutdown into it), so a stream loop watches a single channel, one atomic load per pass.

use tokio::sync::watch;
use tonic::Status;

/// The message of the status a stream ends with when the shutdown grace period runs out.
pub const SHUTTING_DOWN: &str = "server shutting down";
/// The message of the status a stream ends with when its connection reaches `--max-connection-age`.
pub const CONNECTION_AGED: &str = "connection reached its maximum age: reconnect to go on";

/// Why the server ends an open stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    /// The shutdown grace period ended.
    Shutdown,
    /// The stream's connection reached its maximum age and was sent GOAWAY.
    ConnectionAged,
}

impl Farewell {
    /// The status the stream ends with, after the alerts it owes: UNAVAILABLE, which clients retry elsewhere.
    pub fn status(self) -> Status {
        Status::unavailable(match self {
            Farewell::Shutdown => SHUTTING_DOWN,
            Farewell::ConnectionAged => CONNECTION_AGED,
        })
    }
}

/// Turns `Some` when the server asks every stream that watches it to end.
pub type Farewells = watch::Receiver<Option<Farewell>>;

/// A connection's [`Farewells`], carried to its requests as an extension.
#[derive(Debug, Clone)]
pub struct ConnectionFarewells(pub Farewells);
