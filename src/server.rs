//! Assembles the server: the alert service with its limits, health, reflection (v1 and v1alpha), the HTTP/JSON
//! endpoint, HTTP/2 settings and keepalive, the connection policies, and the two-phase graceful shutdown.
//!
//! [`serve`] takes listeners that are already bound, so tests can bind port 0 and know the address before the
//! server runs.

use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{
    body::Body,
    server::NamedService,
    service::{Routes, interceptor::InterceptedService},
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    accept::{self, ConnListener, Protocol},
    auth::GrpcAuth,
    config::{
        MAX_HEADER_LIST_SIZE, MAX_LOCAL_ERROR_RESETS, MAX_PENDING_ACCEPT_RESETS, SHUTDOWN_HARD_DEADLINE, STREAM_WINDOW,
        ServeConfig, connection_window,
    },
    connections::GrpcConnections,
    farewell::Farewell,
    http, pb,
    reload::LiveRules,
    service::{AlertApi, rescue_response},
    stream_loop::StreamContext,
    telemetry::grpc::GrpcMetricsLayer,
    view::ViewHub,
};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the embedded descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
    /// A server task panicked.
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The listeners `serve` accepts connections on: for each endpoint, one per address its listen address resolved
/// to (`localhost` is 127.0.0.1 and ::1).
#[derive(Debug)]
pub struct Listeners {
    /// gRPC (HTTP/2; TLS when the configuration has it); at least one.
    pub grpc: Vec<TcpListener>,
    /// HTTP/JSON; none turns the endpoint off.
    pub http: Vec<TcpListener>,
    /// `GET /metrics` (TLS when the configuration has it); none serves no metrics.
    pub metrics: Vec<TcpListener>,
}

/// Where `listeners` listen.
fn addresses(listeners: &[TcpListener]) -> std::io::Result<Vec<std::net::SocketAddr>> {
    listeners.iter().map(TcpListener::local_addr).collect()
}

/// Serves the live `rules` on `listeners` until `drain` is cancelled, then shuts down in two phases:
///
/// 1. *Drain*: health turns NOT_SERVING (gRPC health, and 503 at `GET /healthz`), then the gRPC server stops
///    accepting connections and sends GOAWAY; open streams go on being served, and a client that half-closes gets
///    every alert and OK. The HTTP endpoint accepts until the grace period is over.
/// 2. *Expire*, when `config.shutdown_grace` runs out: each remaining stream stops reading, sends the alerts of
///    every reading it read and ends UNAVAILABLE. After [`SHUTDOWN_HARD_DEADLINE`] more, `serve` returns even if
///    connections (health watchers, idle clients) are still open.
///
/// # Errors
/// The reflection service cannot be built, or a server fails.
pub async fn serve(
    listeners: Listeners,
    rules: LiveRules,
    config: ServeConfig,
    drain: CancellationToken,
) -> Result<(), ServeError> {
    let (shutdown, farewells) = watch::channel(None);
    let view = ViewHub::new(config.telemetry.gauge("alertstream_view_watchers"));
    let streams = TaskTracker::new();
    let context = StreamContext {
        rules: rules.clone(),
        farewells: farewells.clone(),
        clock: config.clock.clone(),
        max_sensors: config.max_sensors_per_stream,
        lateness: config.lateness,
        max_future: config.max_future,
        max_readings_per_second: config.max_readings_per_second,
        telemetry: config.telemetry.clone(),
        view: view.clone(),
        sinks: config.sinks.clone(),
        states: config.states.clone(),
    };
    let api = AlertApi::new(context, streams.clone(), config.max_streams);
    // Bearer tokens guard the alert service only: health and reflection stay open for probes and discovery.
    let alert_service = InterceptedService::new(
        pb::alert_service_server::AlertServiceServer::new(api).max_decoding_message_size(config.max_message_size),
        GrpcAuth::new(config.security.tokens.clone()),
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;

    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let grpc_addrs = addresses(&listeners.grpc)?;
    // On drain, health turns NOT_SERVING first; then the listeners close and GOAWAY goes out.
    let stopped_accepting = CancellationToken::new();
    tokio::spawn({
        let (drain, health, stopped_accepting) = (drain.clone(), health.clone(), stopped_accepting.clone());
        let states = config.states.clone();
        async move {
            drain.cancelled().await;
            // The streams' last saves get one try each: none waits on a store that is away.
            states.stop_retrying();
            set_health(&health, ServingStatus::NotServing).await;
            tracing::info!("Draining: health is NOT_SERVING; no new connections or streams.");
            stopped_accepting.cancel();
        }
    });
    // The accept loop ends when the server stops accepting, which drops the listener (a listener left open goes on
    // completing TCP handshakes nobody will serve) and sends GOAWAY to every connection.
    let tls = config.security.tls.clone();
    let incoming = accept::connections(listeners.grpc, tls.clone(), Protocol::Grpc, stopped_accepting.clone());
    let routes = Routes::new(alert_service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare();
    // Metrics outside the rescue, so that they count the status the client gets.
    let routes = tower::ServiceBuilder::new()
        .layer(GrpcMetricsLayer::new(config.telemetry.clone()))
        .map_response(rescue_response::<Body>)
        .service(routes);
    // Closes every connection still open when shutdown gives up waiting.
    let terminate = CancellationToken::new();
    let connections = GrpcConnections::new(
        routes,
        http2_settings(&config),
        config.connections,
        config.clock.clone(),
        farewells,
        terminate.clone(),
        config.telemetry.clone(),
    );
    let mut grpc: JoinHandle<Result<(), ServeError>> = tokio::spawn(async move {
        connections.serve(incoming).await;
        Ok(())
    });
    for addr in &grpc_addrs {
        tracing::info!(addr = %addr, tls = tls.is_some(), "Serving gRPC.");
    }

    // The HTTP endpoint accepts until the grace period is over, so that a probe of /healthz sees 503 while the
    // server drains rather than a refused connection.
    let http_stop = CancellationToken::new();
    let mut http: Option<JoinHandle<Result<(), ServeError>>> = match addresses(&listeners.http)?.as_slice() {
        [] => None,
        addrs @ [first, ..] => {
            let addr = *first;
            let auth = http::auth::HttpAuth { tokens: config.security.tokens.clone(), tls: tls.is_some() };
            let endpoint = http::Endpoint::new(
                rules.clone(),
                config.clock.clone(),
                config.max_future,
                drain.clone(),
                view.clone(),
                http_stop.clone(),
            );
            let router = http::router(endpoint, config.max_message_size, auth);
            let connections = accept::connections(listeners.http, tls.clone(), Protocol::Http, http_stop.clone());
            let server = axum::serve(ConnListener::new(connections, addr), router)
                .with_graceful_shutdown(http_stop.clone().cancelled_owned());
            for addr in addrs {
                tracing::info!(addr = %addr, tls = tls.is_some(), "Serving HTTP/JSON.");
            }
            Some(tokio::spawn(async move { Ok(server.await?) }))
        }
    };
    // Metrics are scraped until the end, through the drain and the grace period.
    let metrics_stop = CancellationToken::new();
    let metrics = match listeners.metrics.is_empty() {
        true => None,
        false => Some(serve_metrics(listeners.metrics, &config, metrics_stop.clone())?),
    };
    tracing::info!(rules = rules.borrow().rules().len(), "Ready.");
    let load_log = tokio::spawn(log_load(streams.clone()));

    // A server that ends before shutdown (it can only fail) ends the whole server.
    // Biased: once drain has begun, the servers end because they stopped accepting, and that is the shutdown
    // below, not a failure (unbiased, a server that ended first could skip the grace period and the last log line).
    tokio::select! {
        biased;
        () = drain.cancelled() => {}
        result = &mut grpc => {
            abort(http.as_ref());
            return result?;
        }
        result = until_done(http.as_mut()) => {
            grpc.abort();
            return result;
        }
    }

    streams.close();
    if tokio::time::timeout(config.shutdown_grace, streams.wait()).await.is_err() {
        tracing::info!(open_streams = streams.len(), "Grace period over: ending open streams with UNAVAILABLE.");
        shutdown.send_replace(Some(Farewell::Shutdown));
        let _ = tokio::time::timeout(SHUTDOWN_HARD_DEADLINE, streams.wait()).await;
    }
    http_stop.cancel();
    // Every alert stream is done; give the servers a moment to flush their last responses and close connections.
    let finished = tokio::time::timeout(SHUTDOWN_HARD_DEADLINE, async {
        log_shutdown_error((&mut grpc).await);
        if let Some(http) = http.as_mut() {
            log_shutdown_error(http.await);
        }
    })
    .await
    .is_ok();
    if !finished {
        tracing::warn!("Connections still open after shutdown (health watchers or idle clients): closing them.");
        terminate.cancel();
        grpc.abort();
        abort(http.as_ref());
    }
    load_log.abort();
    // The streams have ended: their sensors' states are saved, and the sinks deliver what they hold, until their
    // flush deadline.
    config.states.finish().await;
    config.sinks.flush().await;
    metrics_stop.cancel();
    if let Some(metrics) = metrics {
        let _ = tokio::time::timeout(SHUTDOWN_HARD_DEADLINE, metrics).await;
    }
    tracing::info!(dropped_log_lines = crate::logging::dropped_lines(), "Shut down.");
    Ok(())
}

/// Serves `GET /metrics` on `listener` until `stop`, folding histogram samples into their buckets meanwhile.
fn serve_metrics(
    listeners: Vec<TcpListener>,
    config: &ServeConfig,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, ServeError> {
    let addrs = addresses(&listeners)?;
    let addr = addrs.first().copied().ok_or_else(|| std::io::Error::other("no metrics listener"))?;
    let tls = config.security.tls.clone();
    let telemetry = config.telemetry.clone();
    let connections = accept::connections(listeners, tls.clone(), Protocol::Http, stop.clone());
    let server =
        axum::serve(ConnListener::new(connections, addr), crate::telemetry::endpoint::router(telemetry.clone()))
            .with_graceful_shutdown(stop.clone().cancelled_owned());
    for addr in &addrs {
        tracing::info!(addr = %addr, tls = tls.is_some(), "Serving metrics.");
    }
    Ok(tokio::spawn(async move {
        let upkeep = async {
            let mut every = tokio::time::interval(crate::telemetry::UPKEEP_EVERY);
            loop {
                every.tick().await;
                telemetry.upkeep();
            }
        };
        tokio::select! {
            served = server => {
                if let Err(error) = served {
                    tracing::warn!(%error, "The metrics server failed.");
                }
            }
            () = upkeep => {}
        }
    }))
}

/// How often the server logs its load (target `alertstream::load`, at debug level).
pub const LOAD_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Logs, every [`LOAD_LOG_INTERVAL`] while debug logging of `alertstream::load` is on, the tasks alive in the
/// runtime and the streams open: what a soak watches for growth.
async fn log_load(streams: TaskTracker) {
    let mut every = tokio::time::interval(LOAD_LOG_INTERVAL);
    loop {
        every.tick().await;
        if tracing::enabled!(target: "alertstream::load", tracing::Level::DEBUG) {
            let alive_tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
            tracing::debug!(target: "alertstream::load", alive_tasks, open_streams = streams.len(), "Load.");
        }
    }
}

/// The HTTP/2 settings of every gRPC connection: keepalive, stream caps, windows and the reset and header limits.
fn http2_settings(config: &ServeConfig) -> http2::Builder<TokioExecutor> {
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout)
        .max_concurrent_streams(config.max_concurrent_streams)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(connection_window(config.max_concurrent_streams))
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_header_list_size(MAX_HEADER_LIST_SIZE);
    http2
}

/// The result of a server task that may not exist; pending forever when it does not.
async fn until_done(task: Option<&mut JoinHandle<Result<(), ServeError>>>) -> Result<(), ServeError> {
    match task {
        Some(task) => task.await?,
        None => std::future::pending().await,
    }
}

fn abort(task: Option<&JoinHandle<Result<(), ServeError>>>) {
    if let Some(task) = task {
        task.abort();
    }
}

/// A server's own error during shutdown is logged, not returned: the server is shutting down either way.
fn log_shutdown_error(result: Result<Result<(), ServeError>, tokio::task::JoinError>) {
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "Server ended with an error during shutdown."),
        Err(e) => tracing::warn!(error = %e, "Server task failed during shutdown."),
    }
}

/// A reflection builder that knows every service this server offers: the alert service, health, and both versions
/// of reflection (each version registers only its own descriptor by itself, so `list` would miss the other).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .include_reflection_service(false)
}

/// Sets the overall health ("") and the alert service's health.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(<pb::alert_service_server::AlertServiceServer<AlertApi> as NamedService>::NAME, status)
        .await;
}
