//! The grpc-ecosystem server metrics, with go-grpc-prometheus' names, labels and counting rules, for every RPC
//! this server offers: a tower layer over the routes.
//!
//! - `grpc_server_started_total` when the call arrives; `grpc_server_handled_total{grpc_code}` and the
//!   `grpc_server_handling_seconds` histogram when it ends: at its status (trailers, or a trailers-only response),
//!   or `Canceled` when the client goes away first.
//! - `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`: every length-prefixed message of the
//!   request and response bodies (a `Stream` counts each reading and each alert), counted as the bytes pass and
//!   added to the shared counters every [`FLUSH_EVERY`] messages and at the end.
//! - Labels `grpc_type` (`unary`, `server_stream`, `bidi_stream`), `grpc_service` (the full service name) and
//!   `grpc_method`. A path that names no method of this server is not counted (grpc-go answers such a call before
//!   its interceptors run).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use metrics::{Counter, Histogram};
use tonic::{Code, Status, body::Body};
use tower::{Layer, Service};

use super::{Telemetry, label};
use crate::clock::Stopwatch;

/// Messages between two flushes of a body's count into the shared counter.
pub const FLUSH_EVERY: u64 = 1024;

/// Every method this server offers: service, method and gRPC type.
const METHODS: [(&str, &str, &str); 7] = [
    ("alertstream.v1.AlertService", "Stream", "bidi_stream"),
    ("alertstream.v1.AlertService", "Evaluate", "unary"),
    ("alertstream.v1.AlertService", "ListRules", "unary"),
    ("grpc.health.v1.Health", "Check", "unary"),
    ("grpc.health.v1.Health", "Watch", "server_stream"),
    ("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo", "bidi_stream"),
    ("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", "bidi_stream"),
];

/// One method's metric handles, looked up once.
struct MethodMetrics {
    service: &'static str,
    method: &'static str,
    kind: &'static str,
    started: Counter,
    received: Counter,
    sent: Counter,
    handling: Histogram,
}

/// Counts every RPC of the service it wraps (a no-op when metrics are off).
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    telemetry: Telemetry,
    methods: Arc<[MethodMetrics]>,
}

impl GrpcMetricsLayer {
    /// The layer recording into `telemetry`.
    pub fn new(telemetry: Telemetry) -> Self {
        let methods = METHODS
            .iter()
            .map(|&(service, method, kind)| {
                let labels =
                    || vec![label("grpc_type", kind), label("grpc_service", service), label("grpc_method", method)];
                MethodMetrics {
                    service,
                    method,
                    kind,
                    started: telemetry.counter("grpc_server_started_total", labels()),
                    received: telemetry.counter("grpc_server_msg_received_total", labels()),
                    sent: telemetry.counter("grpc_server_msg_sent_total", labels()),
                    handling: telemetry.histogram("grpc_server_handling_seconds", labels()),
                }
            })
            .collect();
        Self { telemetry, methods }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner, layer: self.clone() }
    }
}

/// The service [`GrpcMetricsLayer`] makes.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    layer: GrpcMetricsLayer,
}

impl<S, B> Service<Request<B>> for GrpcMetrics<S>
where
    S: Service<Request<CountedRequest<B>>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = match self.layer.telemetry.is_on() {
            true => self.layer.methods.iter().position(|m| is_path_of(request.uri().path(), m)),
            false => None,
        };
        let Some(method) = method else {
            let response = self.inner.call(request.map(|body| CountedRequest { body, count: None }));
            return Box::pin(response);
        };
        let layer = self.layer.clone();
        let metrics = &layer.methods[method];
        metrics.started.increment(1);
        let rpc = Rpc { layer: layer.clone(), method, stopwatch: Stopwatch::start(), ended: false };
        let received = metrics.received.clone();
        let response = self.inner.call(request.map(|body| CountedRequest { body, count: Some(Count::new(received)) }));
        Box::pin(async move {
            let response = response.await?;
            Ok(rpc.watch(response))
        })
    }
}

fn is_path_of(path: &str, method: &MethodMetrics) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(method.service))
        .and_then(|p| p.strip_prefix('/'))
        .is_some_and(|m| m == method.method)
}

/// One call being counted, until its status is known.
struct Rpc {
    layer: GrpcMetricsLayer,
    method: usize,
    stopwatch: Stopwatch,
    ended: bool,
}

impl Rpc {
    /// Counts the call's end now if `response` is trailers-only, or else when its body ends.
    fn watch(mut self, response: Response<Body>) -> Response<Body> {
        if let Some(code) = status_code(response.headers()) {
            self.end(code);
            return response;
        }
        let sent = self.layer.methods[self.method].sent.clone();
        response.map(|body| Body::new(CountedResponse { body, count: Count::new(sent), rpc: self }))
    }

    fn end(&mut self, code: Code) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let metrics = &self.layer.methods[self.method];
        metrics.handling.record(self.stopwatch.seconds());
        let labels = vec![
            label("grpc_type", metrics.kind),
            label("grpc_service", metrics.service),
            label("grpc_method", metrics.method),
            label("grpc_code", code_name(code)),
        ];
        self.layer.telemetry.counter("grpc_server_handled_total", labels).increment(1);
    }
}

impl Drop for Rpc {
    fn drop(&mut self) {
        // Dropped before its status went out: the client went away, or the connection did.
        self.end(Code::Cancelled);
    }
}

/// The `grpc-status` in `headers`, if any (a malformed one is `Unknown`, as gRPC clients read it).
fn status_code(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    Some(value.to_str().ok().and_then(|v| v.parse::<i32>().ok()).map_or(Code::Unknown, Code::from_i32))
}

/// grpc-go's name of `code`, as go-grpc-prometheus labels it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The messages counted in one body: gRPC's length-prefixed framing (a flag byte and a 4-byte length, then the
/// message) followed across DATA chunks.
struct Count {
    counter: Counter,
    counted: u64,
    /// The prefix bytes read of the next message's header.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl Count {
    fn new(counter: Counter) -> Self {
        Self { counter, counted: 0, header: [0; 5], header_len: 0, remaining: 0 }
    }

    fn data(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = data.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data = &data[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                self.header_len = 0;
                self.remaining =
                    u64::from(u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]));
                self.counted += 1;
                if self.counted == FLUSH_EVERY {
                    self.counter.increment(std::mem::take(&mut self.counted));
                }
            }
        }
    }
}

impl Drop for Count {
    fn drop(&mut self) {
        self.counter.increment(self.counted);
    }
}

/// A request body whose messages are counted (when metrics are on).
pub struct CountedRequest<B> {
    body: B,
    count: Option<Count>,
}

impl<B> HttpBody for CountedRequest<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        if let (Some(count), Some(Ok(frame))) = (&mut this.count, &frame)
            && let Some(data) = frame.data_ref()
        {
            count.data(data);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body whose messages are counted, and whose trailers end the call's count.
struct CountedResponse {
    body: Body,
    count: Count,
    rpc: Rpc,
}

impl HttpBody for CountedResponse {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.count.data(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.rpc.end(status_code(trailers).unwrap_or(Code::Unknown));
                }
            }
            Some(Err(status)) => this.rpc.end(status.code()),
            None => this.rpc.end(Code::Unknown),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_across_chunks_of_any_size() {
        let message = |len: u32| {
            let mut m = vec![0u8];
            m.extend_from_slice(&len.to_be_bytes());
            m.extend(std::iter::repeat_n(7u8, len as usize));
            m
        };
        let stream: Vec<u8> = [3u32, 0, 300, 1, 70_000].into_iter().flat_map(message).collect();
        for chunk in [1, 2, 5, 6, 17, 4096, stream.len()] {
            let mut count = Count::new(Counter::noop());
            for piece in stream.chunks(chunk) {
                count.data(piece);
            }
            assert_eq!((count.counted, count.remaining, count.header_len), (5, 0, 0), "chunks of {chunk}");
        }
    }

    #[test]
    fn paths_name_their_method_exactly() {
        let stream = GrpcMetricsLayer::new(Telemetry::off()).methods;
        let find = |path: &str| stream.iter().position(|m| is_path_of(path, m));
        assert_eq!(find("/alertstream.v1.AlertService/Stream"), Some(0));
        assert_eq!(find("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"), Some(6));
        for other in ["/alertstream.v1.AlertService/StreamX", "/alertstream.v1.AlertService", "/x/Stream", ""] {
            assert_eq!(find(other), None, "{other}");
        }
    }

    #[test]
    fn every_code_has_grpc_gos_name() {
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(status_code(&HeaderMap::new()), None);
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "8".parse().unwrap());
        assert_eq!(status_code(&headers), Some(Code::ResourceExhausted));
        headers.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(status_code(&headers), Some(Code::Unknown));
    }
}
