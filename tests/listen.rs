//! Listen addresses as a new user writes them: a host name (`localhost:PORT`) is resolved and every address it
//! resolves to is served, on each listener.

mod common;

use std::{process::Command, time::Duration};

use common::{binary::Binary, reading};

#[tokio::test]
async fn a_host_name_is_resolved_and_each_of_its_addresses_served() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alertstream"));
    command.args(["serve", "--listen", "localhost:0", "--http-listen", "localhost:0", "--log-format", "json"]);
    let server = Binary::spawn(command, false, Duration::from_secs(30));
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let evaluation = alertstream::pb::alert_service_client::AlertServiceClient::new(server.channel().await)
        .evaluate(reading("line-1", 1, &[("temperature", 8.0)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(evaluation.status, "temp too low");
    assert!(server.http_addr().await.ip().is_loopback());
    // Every address the name resolved to is listed as served.
    let resolved: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs("localhost:0").unwrap().collect();
    assert!(server.count_log("Serving gRPC.") >= 1 && server.count_log("Serving gRPC.") <= resolved.len());
}

#[test]
fn a_listen_address_that_does_not_resolve_is_refused_naming_the_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_alertstream"))
        .args(["serve", "--listen", "no-such-host.invalid:50051", "--http-listen", ""])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--listen `no-such-host.invalid:50051`"), "{stderr}");
}
