//! The tonic `AlertService` implementation, and the one function that maps errors to `Status`.
//!
//! Each `Stream` call is one [`StreamLoop`] (in `stream_loop.rs`): wait for a wake, act on it, yield the alerts it
//! owes, wait again. `Evaluate` and `ListRules` answer from the current rule snapshot.

use std::{pin::Pin, sync::Arc};

use alertstream_engine::{Alert, RuleSet, validate_time};
use tokio::sync::Semaphore;
use tokio_stream::Stream;
use tokio_util::task::TaskTracker;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::{
    convert::{evaluation_to_pb, reading_from_pb, rule_to_pb},
    deadline::requested_timeout,
    farewell::ConnectionFarewells,
    pb,
    stream_codec::InboundReading,
    stream_loop::{StreamContext, StreamLoop, StreamOptions},
};

/// The request metadata a client sets to `1` to resume (docs/DEPLOYMENT.md): checkpoints, and resent readings
/// skipped.
pub const RESUME_HEADER: &str = "alertstream-resume";

/// The `AlertService` implementation: what every stream needs, and the count of open streams.
#[derive(Debug, Clone)]
pub struct AlertApi {
    /// The live rules, shutdown's expiry, the clock and the per-stream limits. Each unary call uses the current
    /// rule snapshot; each stream moves to a new one between readings.
    context: StreamContext,
    /// Counts open streams, so shutdown knows when the last one has ended.
    streams: TaskTracker,
    /// One permit per stream the server may have open at once (`--max-streams`).
    admissions: Arc<Semaphore>,
    /// The number of permits, for the refusal's message.
    max_streams: usize,
}

impl AlertApi {
    /// An API whose streams run in `context`; each open stream holds a token of `streams`, and at most
    /// `max_streams` are open at once.
    pub fn new(context: StreamContext, streams: TaskTracker, max_streams: usize) -> Self {
        Self { context, streams, admissions: Arc::new(Semaphore::new(max_streams)), max_streams }
    }

    fn current_rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.context.rules.borrow())
    }
}

/// The response stream of `Stream`.
/// Its items are engine alerts: `stream_codec` encodes them straight into the response.
type AlertStream = Pin<Box<dyn Stream<Item = Result<Alert, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::alert_service_server::AlertService for AlertApi {
    type StreamStream = AlertStream;

    #[tracing::instrument(name = "stream", skip_all, fields(peer = ?request.remote_addr()))]
    async fn stream(&self, request: Request<Streaming<InboundReading>>) -> Result<Response<AlertStream>, Status> {
        // Over the cap a stream is refused at once, rather than every stream slowing down.
        let Ok(admission) = Arc::clone(&self.admissions).try_acquire_owned() else {
            tracing::debug!(max_streams = self.max_streams, "Stream refused: the server has its most open streams.");
            return Err(Status::resource_exhausted(format!(
                "too many open streams: this server serves at most {} at once; retry later or elsewhere",
                self.max_streams
            )));
        };
        let mut context = self.context.clone();
        // The connection's farewells carry its maximum age as well as the server's shutdown.
        if let Some(ConnectionFarewells(farewells)) = request.extensions().get::<ConnectionFarewells>() {
            context.farewells = farewells.clone();
        }
        let resume = request.metadata().get(RESUME_HEADER).is_some_and(|value| value == "1");
        if resume && !self.context.states.is_on() {
            return Err(Status::failed_precondition(
                "this server keeps no sensor state (--state-dir or --state-store): a stream cannot resume",
            ));
        }
        let options = StreamOptions {
            deadline: requested_timeout(request.metadata())
                .and_then(|timeout| self.context.clock.now().checked_add(timeout)),
            resume,
        };
        let stream = StreamLoop::new(request.into_inner(), context, options, self.streams.token(), admission);
        tracing::debug!("Stream opened.");
        Ok(Response::new(Box::pin(stream)))
    }

    async fn evaluate(&self, request: Request<pb::Reading>) -> Result<Response<pb::Evaluation>, Status> {
        let now = self.context.clock.now();
        let reading = reading_from_pb(request.into_inner(), || now)
            .map_err(|invalid| Status::invalid_argument(invalid.1.to_string()))?;
        validate_time(reading.time, now, self.context.max_future)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
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
