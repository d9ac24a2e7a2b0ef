//! The tonic `AlertService` implementation, and the one function that maps errors to `Status`.
//!
//! Each `Stream` call is one loop: pull the next reading, evaluate it, yield its alerts, pull the next. Nothing is
//! spawned and nothing is buffered beyond the alerts of one reading, so a client that stops reading is pushed back
//! by HTTP/2 flow control. The same loop also watches the *expire* signal of shutdown, a new rule snapshot (taken
//! up between readings), and the stream's next absence deadline (the one place the wall clock enters: the loop
//! hands the engine the time as data).

use std::{
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use alertstream_engine::{Alert, RuleSet, StreamState};
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::{
    convert::{alert_to_pb, evaluation_to_pb, reading_from_pb, rule_to_pb},
    pb,
    reload::LiveRules,
};

/// The message of the status a stream ends with when the shutdown grace period runs out.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// The `AlertService` implementation: the live rules and the limits every stream obeys.
#[derive(Debug, Clone)]
pub struct AlertApi {
    /// The live rules: each unary call uses the current snapshot; each stream moves to a new one between readings.
    rules: LiveRules,
    /// A stream tracks at most this many sensors.
    max_sensors_per_stream: usize,
    /// How far behind its sensor's latest a reading may be and still be applied.
    lateness: Duration,
    /// Cancelled when the shutdown grace period ends: every open stream stops reading and ends UNAVAILABLE.
    expire: CancellationToken,
    /// Counts open streams, so shutdown knows when the last one has ended.
    streams: TaskTracker,
}

impl AlertApi {
    /// An API over `rules`. Each open stream holds a token of `streams` and ends when `expire` is cancelled.
    pub fn new(
        rules: LiveRules,
        max_sensors_per_stream: usize,
        lateness: Duration,
        expire: CancellationToken,
        streams: TaskTracker,
    ) -> Self {
        Self { rules, max_sensors_per_stream, lateness, expire, streams }
    }

    fn current_rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.borrow())
    }
}

/// The response stream of `Stream`.
type AlertStream = Pin<Box<dyn Stream<Item = Result<pb::Alert, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::alert_service_server::AlertService for AlertApi {
    type StreamStream = AlertStream;

    #[tracing::instrument(name = "stream", skip_all, fields(peer = ?request.remote_addr()))]
    async fn stream(&self, request: Request<Streaming<pb::Reading>>) -> Result<Response<AlertStream>, Status> {
        let mut inbound = request.into_inner();
        let mut updates = self.rules.clone();
        let mut rules = Arc::clone(&updates.borrow_and_update());
        let expired = self.expire.clone().cancelled_owned();
        let mut state = StreamState::new(self.max_sensors_per_stream, self.lateness);
        let open = self.streams.token();
        tracing::debug!("Stream opened.");
        let alerts = async_stream::stream! {
            // Held for as long as the stream lives: dropped when it ends or when the client goes away.
            let _open = open;
            let mut owed = Vec::new();
            // The shutdown and reload futures live across readings: made once (and again after each reload), not
            // on every pass of the loop, so waiting on them costs nothing per reading.
            tokio::pin!(expired);
            let mut watching = true;
            let mut reloaded = Box::pin(next_rules(updates));
            loop {
                let absence_due = state.next_deadline();
                let next = tokio::select! {
                    biased;
                    () = &mut expired => {
                        tracing::debug!(sensor_count = state.sensor_count(), "Stream ended by shutdown.");
                        yield Err(Status::unavailable(SHUTTING_DOWN));
                        break;
                    }
                    (updates, changed) = &mut reloaded, if watching => {
                        match changed {
                            Some(new_rules) => {
                                new_rules.adopt(&rules, &mut state, SystemTime::now(), &mut owed);
                                rules = new_rules;
                                reloaded = Box::pin(next_rules(updates));
                                tracing::debug!(rules = rules.rules().len(), "Stream moved to new rules.");
                            }
                            // No more can come (the sender is gone): stop asking.
                            None => watching = false,
                        }
                        for alert in owed.drain(..) {
                            yield Ok(alert_to_pb(alert));
                        }
                        continue;
                    }
                    () = sleep_until(absence_due), if absence_due.is_some() => {
                        rules.check_absence(&mut state, SystemTime::now(), &mut owed);
                        for alert in owed.drain(..) {
                            yield Ok(alert_to_pb(alert));
                        }
                        continue;
                    }
                    next = inbound.next() => next,
                };
                match next {
                    Some(Ok(reading)) => {
                        evaluate_streamed(&rules, &mut state, reading, &mut owed);
                        for alert in owed.drain(..) {
                            yield Ok(alert_to_pb(alert));
                        }
                    }
                    Some(Err(status)) => {
                        tracing::debug!(code = ?status.code(), message = status.message(), "Stream ended by an inbound error.");
                        yield Err(rescue(status));
                        break;
                    }
                    None => {
                        tracing::debug!(sensor_count = state.sensor_count(), "Stream half-closed by the client.");
                        break;
                    }
                }
            }
        };
        Ok(Response::new(Box::pin(alerts)))
    }

    async fn evaluate(&self, request: Request<pb::Reading>) -> Result<Response<pb::Evaluation>, Status> {
        let reading = reading_from_pb(request.into_inner(), SystemTime::now())
            .map_err(|invalid| Status::invalid_argument(invalid.1.to_string()))?;
        let evaluation = self
            .current_rules()
            .evaluate_stateless(&reading)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        Ok(Response::new(evaluation_to_pb(evaluation)))
    }

    async fn list_rules(&self, _: Request<pb::ListRulesRequest>) -> Result<Response<pb::ListRulesResponse>, Status> {
        let rules = self.current_rules().rules().iter().map(rule_to_pb).collect();
        Ok(Response::new(pb::ListRulesResponse { rules }))
    }
}

/// Evaluates one streamed reading into `out`; a reading whose wire form is unusable becomes an in-band event.
fn evaluate_streamed(rules: &RuleSet, state: &mut StreamState, reading: pb::Reading, out: &mut Vec<Alert>) {
    let now = SystemTime::now();
    match reading_from_pb(reading, now) {
        Ok(reading) => rules.evaluate(state, reading, now, out),
        Err(invalid) => out.push(Alert::invalid_reading(&invalid.0, &invalid.1)),
    }
}

/// The next rule snapshot, with the receiver to wait for the one after; `None` once no more can come (the sender
/// is gone).
async fn next_rules(mut updates: LiveRules) -> (LiveRules, Option<Arc<RuleSet>>) {
    let next = match updates.changed().await {
        Ok(()) => Some(Arc::clone(&updates.borrow_and_update())),
        Err(_) => None,
    };
    (updates, next)
}

/// Sleeps until `deadline` (wall clock); never completes for `None`.
async fn sleep_until(deadline: Option<SystemTime>) {
    match deadline {
        Some(deadline) => tokio::time::sleep(deadline.duration_since(SystemTime::now()).unwrap_or_default()).await,
        None => std::future::pending().await,
    }
}

/// Maps every error that leaves the service to the status the contract promises.
///
/// - tonic reports an inbound message over the size limit as OUT_OF_RANGE; gRPC core, grpc-java and the contract
///   say RESOURCE_EXHAUSTED.
/// - A message that does not decode is INTERNAL with the decode error as its message, as tonic already makes it.
/// - Everything else passes through.
pub fn rescue(status: Status) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        return Status::resource_exhausted(status.message().to_owned());
    }
    status
}

/// Applies [`rescue`] to a response whose status travels in its headers (a trailers-only response, as tonic sends
/// when a unary request fails to decode before the handler runs). A tower `map_response` layer calls it.
pub fn rescue_response<B>(mut response: http::Response<B>) -> http::Response<B> {
    if let Some(status) = Status::from_header_map(response.headers()) {
        let code = status.code();
        let mapped = rescue(status);
        if mapped.code() != code && mapped.add_header(response.headers_mut()).is_err() {
            tracing::error!(code = ?mapped.code(), "Could not rewrite a response status header.");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_messages_are_resource_exhausted() {
        let tonic_says =
            Status::out_of_range("Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes");
        let mapped = rescue(tonic_says);
        assert_eq!(mapped.code(), Code::ResourceExhausted);
        assert!(mapped.message().contains("found 5 bytes"));
    }

    #[test]
    fn other_errors_pass_through() {
        for status in
            [Status::out_of_range("seq too large"), Status::internal("failed to decode"), Status::cancelled("")]
        {
            let code = status.code();
            assert_eq!(rescue(status).code(), code);
        }
    }

    #[test]
    fn trailers_only_responses_are_rescued() {
        let response: http::Response<()> =
            Status::out_of_range("Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes")
                .into_http();
        let rescued = rescue_response(response);
        let status = Status::from_header_map(rescued.headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("found 9 bytes"));
    }
}
