//! Assembles the server: the alert service with its limits, health, reflection (v1 and v1alpha), the HTTP/JSON
//! endpoint, HTTP/2 keepalive, and the two-phase graceful shutdown.
//!
//! [`serve`] takes listeners that are already bound, so tests can bind port 0 and know the address before the
//! server runs.

use std::{sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{
    server::NamedService,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    config::{SHUTDOWN_HARD_DEADLINE, ServeConfig},
    engine::RuleSet,
    http, pb,
    service::{AlertApi, rescue_response},
};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not be built from the embedded descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
    /// A server task panicked.
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The listeners `serve` accepts connections on.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC (HTTP/2, plaintext).
    pub grpc: TcpListener,
    /// HTTP/JSON; `None` turns the endpoint off.
    pub http: Option<TcpListener>,
}

/// Serves `rules` on `listeners` until `drain` is cancelled, then shuts down in two phases:
///
/// 1. *Drain*: health turns NOT_SERVING, then the servers stop accepting connections and send GOAWAY; open
///    streams go on being served, and a client that half-closes gets every alert and OK.
/// 2. *Expire*, when `config.shutdown_grace` runs out: each remaining stream stops reading, sends the alerts of
///    every reading it read and ends UNAVAILABLE. After [`SHUTDOWN_HARD_DEADLINE`] more, `serve` returns even if
///    connections (health watchers, idle clients) are still open.
///
/// # Errors
/// The reflection service cannot be built, or a server fails.
pub async fn serve(
    listeners: Listeners,
    rules: Arc<RuleSet>,
    config: ServeConfig,
    drain: CancellationToken,
) -> Result<(), ServeError> {
    let expire = CancellationToken::new();
    let streams = TaskTracker::new();
    let api = AlertApi::new(Arc::clone(&rules), config.max_sensors_per_stream, expire.clone(), streams.clone());
    let alert_service =
        pb::alert_service_server::AlertServiceServer::new(api).max_decoding_message_size(config.max_message_size);

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let grpc_addr = listeners.grpc.local_addr()?;
    // serve_with_incoming ignores the builder's tcp_nodelay: set it on the incoming stream, or every small alert
    // waits on Nagle's algorithm.
    let incoming = TcpIncoming::from(listeners.grpc).with_nodelay(Some(true));
    let stop_accepting = {
        let (drain, health) = (drain.clone(), health.clone());
        async move {
            drain.cancelled().await;
            set_health(&health, ServingStatus::NotServing).await;
            tracing::info!("Draining: health is NOT_SERVING; no new connections or streams.");
        }
    };
    let grpc = Server::builder()
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout))
        .layer(tower::util::MapResponseLayer::new(rescue_response::<tonic::body::Body>))
        .add_service(alert_service)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, stop_accepting);
    let mut grpc: JoinHandle<Result<(), ServeError>> = tokio::spawn(async move { Ok(grpc.await?) });
    tracing::info!(addr = %grpc_addr, "Serving gRPC.");

    let mut http: JoinHandle<Result<(), ServeError>> = match listeners.http {
        Some(listener) => {
            let addr = listener.local_addr()?;
            let router = http::router(Arc::clone(&rules), config.max_message_size);
            let server = axum::serve(listener, router).with_graceful_shutdown(drain.clone().cancelled_owned());
            tracing::info!(addr = %addr, "Serving HTTP/JSON.");
            tokio::spawn(async move { Ok(server.await?) })
        }
        None => tokio::spawn(async { Ok(()) }),
    };
    tracing::info!(rules = rules.rules().len(), "Ready.");

    // A server that fails before shutdown ends the whole server.
    tokio::select! {
        () = drain.cancelled() => {}
        result = &mut grpc => { http.abort(); return result?; }
        result = &mut http => { if let Err(e) = result? { grpc.abort(); return Err(e); } }
    }

    streams.close();
    if tokio::time::timeout(config.shutdown_grace, streams.wait()).await.is_err() {
        tracing::info!(open_streams = streams.len(), "Grace period over: ending open streams with UNAVAILABLE.");
        expire.cancel();
        let _ = tokio::time::timeout(SHUTDOWN_HARD_DEADLINE, streams.wait()).await;
    }
    // Every alert stream is done; give the servers a moment to flush their last responses and close connections.
    let finished = finish(&mut grpc, SHUTDOWN_HARD_DEADLINE).await && finish(&mut http, SHUTDOWN_HARD_DEADLINE).await;
    if !finished {
        tracing::warn!(
            open_streams = streams.len(),
            "Connections still open after shutdown (health watchers or idle clients); closing them."
        );
        grpc.abort();
        http.abort();
    }
    tracing::info!("Shut down.");
    Ok(())
}

/// Waits up to `deadline` for a server task; whether it finished. Its own error is logged, not returned: the
/// server is shutting down either way.
async fn finish(task: &mut JoinHandle<Result<(), ServeError>>, deadline: Duration) -> bool {
    match tokio::time::timeout(deadline, task).await {
        Ok(Ok(Ok(()))) => true,
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "Server ended with an error during shutdown.");
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Server task failed during shutdown.");
            true
        }
        Err(_) => false,
    }
}

/// Sets the overall health ("") and the alert service's health.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(<pb::alert_service_server::AlertServiceServer<AlertApi> as NamedService>::NAME, status)
        .await;
}
