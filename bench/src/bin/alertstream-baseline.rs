//! The transport's ceiling: a bare tonic server of the same proto whose `Stream` answers each reading with one
//! contract-sized alert, the one alertstream sends for its default rule `temp_too_low` (rule name, state FIRING,
//! severity WARNING, message, the reading's seq, time and values), with no rule engine, no validation and tonic's
//! default settings. `alertstream-loadgen compare` measures alertstream against it.
//!
//! Usage: `alertstream-baseline [ADDR]` (default 127.0.0.1:0); prints `listening on ADDR` once it accepts.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, pin::Pin, time::SystemTime};

use alertstream_bench::pb::{self, alert_service_server::AlertServiceServer};
use tokio_stream::{Stream, StreamExt as _, wrappers::TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

struct Baseline;

type Alerts = Pin<Box<dyn Stream<Item = Result<pb::Alert, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::alert_service_server::AlertService for Baseline {
    type StreamStream = Alerts;

    async fn stream(&self, request: Request<Streaming<pb::Reading>>) -> Result<Response<Alerts>, Status> {
        let alerts = request.into_inner().map(|reading| {
            let reading = reading?;
            // The term alertstream's default rule explains its alert with: the alert stays contract-sized.
            let explanation = vec![pb::Term {
                expression: "temperature".to_owned(),
                value: reading.values.get("temperature").copied().unwrap_or_default(),
                operator: "<".to_owned(),
                threshold: 10.0,
            }];
            Ok(pb::Alert {
                sensor_id: reading.sensor_id,
                rule: "temp_too_low".to_owned(),
                state: pb::AlertState::Firing as i32,
                severity: pb::Severity::Warning as i32,
                message: "temp too low".to_owned(),
                reading_seq: reading.seq,
                time: Some(reading.time.unwrap_or_else(|| SystemTime::now().into())),
                values: reading.values,
                explanation,
            })
        });
        Ok(Response::new(Box::pin(alerts)))
    }

    async fn evaluate(&self, _: Request<pb::Reading>) -> Result<Response<pb::Evaluation>, Status> {
        Err(Status::unimplemented("the baseline serves Stream only"))
    }

    async fn list_rules(&self, _: Request<pb::ListRulesRequest>) -> Result<Response<pb::ListRulesResponse>, Status> {
        Err(Status::unimplemented("the baseline serves Stream only"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args().nth(1).as_deref().unwrap_or("127.0.0.1:0").parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    // tonic's defaults, but for TCP_NODELAY, which `serve` would set and `serve_with_incoming` does not.
    let incoming = TcpListenerStream::new(listener).map(|s| {
        let s = s?;
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    });
    tonic::transport::Server::builder()
        .add_service(AlertServiceServer::new(Baseline))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
