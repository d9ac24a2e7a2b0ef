//! Prometheus metrics, served at `GET /metrics` on `--metrics-listen`: the grpc-ecosystem server metrics of every
//! RPC ([`grpc`]) and alertstream's own ([`stream`] for what streams count). Recorded through the `metrics` facade
//! into this server's own `metrics-exporter-prometheus` recorder (no global recorder, so servers in one process
//! count apart), rendered as Prometheus text with real histograms.
//!
//! Off unless `--metrics-listen` is given: then every handle is a no-op and no RPC is wrapped. On, the hot path
//! stays lock-free: a stream counts in its own fields and adds them to the shared counters every
//! [`stream::FLUSH_EVERY`] readings and when it ends; the evaluation histogram takes one reading in
//! [`stream::SAMPLE_EVERY`].

pub mod endpoint;
pub mod grpc;
pub mod stream;

use std::{sync::Arc, time::Duration};

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// How often histogram samples are folded into their buckets when nobody scrapes.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Buckets of `grpc_server_handling_seconds`: go-grpc-prometheus's (Prometheus' default buckets).
const HANDLING_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets of `alertstream_evaluation_seconds`: one reading through the rules, 100 ns to 10 ms.
const EVALUATION_BUCKETS: [f64; 11] = [1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3, 1e-2];

/// Every metric, with its kind, unit and help text.
const DESCRIPTIONS: [(&str, Kind, &str); 21] = [
    ("grpc_server_started_total", Kind::Counter, "Total number of RPCs started on the server."),
    (
        "grpc_server_handled_total",
        Kind::Counter,
        "Total number of RPCs completed on the server, regardless of success or failure.",
    ),
    ("grpc_server_msg_received_total", Kind::Counter, "Total number of RPC stream messages received on the server."),
    ("grpc_server_msg_sent_total", Kind::Counter, "Total number of gRPC stream messages sent by the server."),
    (
        "grpc_server_handling_seconds",
        Kind::Histogram,
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    ),
    ("alertstream_readings_total", Kind::Counter, "Readings received on streams, valid or not."),
    ("alertstream_alerts_total", Kind::Counter, "Alerts sent on streams, by rule (or event) and state."),
    ("alertstream_invalid_readings_total", Kind::Counter, "Readings refused in-band as invalid_reading."),
    ("alertstream_late_readings_total", Kind::Counter, "Readings refused in-band as late_reading."),
    ("alertstream_active_streams", Kind::Gauge, "Streams open now."),
    ("alertstream_active_sensors", Kind::Gauge, "Sensors tracked by the open streams, as of their last count."),
    (
        "alertstream_evaluation_seconds",
        Kind::Histogram,
        "Time to evaluate one reading against the rules (one reading in 64 is timed).",
    ),
    ("alertstream_open_connections", Kind::Gauge, "gRPC connections open now."),
    ("alertstream_rules_reloads_total", Kind::Counter, "Rules file reloads, by result."),
    ("alertstream_view_watchers", Kind::Gauge, "Browsers watching the live view now."),
    ("alertstream_sink_sent_total", Kind::Counter, "Alerts a sink delivered, by sink."),
    (
        "alertstream_sink_dropped_total",
        Kind::Counter,
        "Alerts a sink gave up on, by sink and reason (queue_full, rejected, flush_deadline).",
    ),
    (
        "alertstream_state_loads_total",
        Kind::Counter,
        "Sensor states looked up in the store as a sensor's stream began, by result (restored, none, refused, error).",
    ),
    (
        "alertstream_state_saves_total",
        Kind::Counter,
        "Sensor states saved by open and ending streams, by result (saved, error, queue_full, closed).",
    ),
    ("alertstream_sink_stale_waiting", Kind::Gauge, "Alerts of ended streams waiting to be resolved as stale."),
    (
        "alertstream_sink_stale_notices_dropped_total",
        Kind::Counter,
        "Alerts the stale tracker could not take (its queue full): they are not resolved as stale.",
    ),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The server's metrics: on (a recorder and its handles) or off (every handle a no-op). Cheap to clone.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    readings: Counter,
    invalid_readings: Counter,
    late_readings: Counter,
    active_streams: Gauge,
    active_sensors: Gauge,
    evaluation: Histogram,
    open_connections: Gauge,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("on", &self.is_on()).finish()
    }
}

impl Telemetry {
    /// Metrics off: nothing is recorded.
    pub fn off() -> Self {
        Self::default()
    }

    /// Metrics on, in a recorder of their own.
    ///
    /// # Panics
    /// Never: the bucket lists are constant and not empty.
    pub fn on() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("grpc_server_handling_seconds".to_owned()), &HANDLING_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("alertstream_evaluation_seconds".to_owned()),
                    &EVALUATION_BUCKETS,
                )
            })
            .unwrap_or_else(|e| unreachable!("the bucket lists are not empty: {e}"))
            .build_recorder();
        for (name, kind, help) in DESCRIPTIONS {
            let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
            match kind {
                Kind::Counter => recorder.describe_counter(name.into(), unit, help.into()),
                Kind::Gauge => recorder.describe_gauge(name.into(), unit, help.into()),
                Kind::Histogram => recorder.describe_histogram(name.into(), unit, help.into()),
            }
        }
        let counter = |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &metadata());
        let gauge = |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &metadata());
        let inner = Inner {
            readings: counter("alertstream_readings_total"),
            invalid_readings: counter("alertstream_invalid_readings_total"),
            late_readings: counter("alertstream_late_readings_total"),
            active_streams: gauge("alertstream_active_streams"),
            active_sensors: gauge("alertstream_active_sensors"),
            evaluation: recorder
                .register_histogram(&Key::from_static_name("alertstream_evaluation_seconds"), &metadata()),
            open_connections: gauge("alertstream_open_connections"),
            handle: recorder.handle(),
            recorder,
        };
        Self { inner: Some(Arc::new(inner)) }
    }

    /// Whether metrics are on.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The metrics in Prometheus text format; `None` when off.
    pub fn render(&self) -> Option<String> {
        Some(self.inner.as_ref()?.handle.render())
    }

    /// Folds histogram samples into their buckets (a scrape does it too), so that they do not pile up between
    /// scrapes.
    pub fn upkeep(&self) {
        if let Some(inner) = &self.inner {
            inner.handle.run_upkeep();
        }
    }

    /// Counts one rules reload: `ok` when the new rules were published.
    pub fn rules_reloaded(&self, ok: bool) {
        self.counter("alertstream_rules_reloads_total", vec![Label::new("result", if ok { "ok" } else { "error" })])
            .increment(1);
    }

    /// Counts an open gRPC connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        let gauge = self.inner.as_ref().map(|inner| inner.open_connections.clone());
        if let Some(gauge) = &gauge {
            gauge.increment(1);
        }
        OpenConnection(gauge)
    }

    /// The counter `name` with `labels` (a no-op when off). Looking it up takes the registry's lock: callers on the
    /// hot path keep the handle, or add their own counts to it now and then.
    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        match &self.inner {
            Some(inner) => inner.counter(name, labels),
            None => Counter::noop(),
        }
    }

    /// The gauge `name` (a no-op when off).
    pub fn gauge(&self, name: &'static str) -> Gauge {
        match &self.inner {
            Some(inner) => inner.recorder.register_gauge(&Key::from_static_name(name), &metadata()),
            None => Gauge::noop(),
        }
    }

    /// The histogram `name` with `labels` (a no-op when off).
    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        match &self.inner {
            Some(inner) => inner.recorder.register_histogram(&Key::from_parts(name, labels), &metadata()),
            None => Histogram::noop(),
        }
    }
}

impl Inner {
    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder.register_counter(&Key::from_parts(name, labels), &metadata())
    }
}

/// An open gRPC connection, counted in `alertstream_open_connections` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Option<Gauge>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.decrement(1);
        }
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, None)
}

/// A label value from a `&'static str` or an owned string.
pub fn label(key: &'static str, value: impl Into<SharedString>) -> Label {
    Label::new(key, value.into())
}
