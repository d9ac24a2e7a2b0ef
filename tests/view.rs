//! The live web view in headless Chromium (Debian's chromium and chromium-driver, driven by selenium from the venv:
//! `clients/python/view_check.py`), against a real server on loopback: the page goes live, shows an alert fired on
//! a gRPC stream, shows it to a page opened afterwards (the streams' snapshot), shows it resolved, and a screenshot
//! is not blank; with tokens on, the page and its events need the token and work through `?token=`.

mod common;

use std::{path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use alertstream::{
    auth::TokenSet,
    config::{Security, ServeConfig, default_rules},
};
use common::TestServer;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs view_check.py against `server`, saving its screenshot in `dir`; fails the test unless it prints OK.
async fn view_check(server: &TestServer, token: Option<&str>, dir: &std::path::Path) -> PathBuf {
    let screenshot = dir.join("view.png");
    let mut command = tokio::process::Command::new(repo().join(".venv/bin/python"));
    command.arg(repo().join("clients/python/view_check.py"));
    command.args(["--target", &server.grpc_addr.to_string(), "--http", &server.http_addr.to_string()]);
    command.arg("--screenshot").arg(&screenshot);
    if let Some(token) = token {
        command.args(["--token", token]);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("view_check.py finishes")
        .expect("the venv's python runs (scripts/setup-venv.sh)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && text.starts_with("OK "), "{text}");
    screenshot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_alerts_as_they_fire_and_resolve() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let screenshot = view_check(&server, None, dir.path()).await;
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a screenshot of a page with content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_on_the_page_and_its_events_need_the_token() {
    let tokens = TokenSet::parse("tokens", "view-token-41c2\n").unwrap();
    let (_publisher, live) = tokio::sync::watch::channel(Arc::new(tokens));
    let security = Security { tokens: Some(live), ..Security::default() };
    let server = TestServer::with(default_rules(), ServeConfig { security, ..ServeConfig::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    view_check(&server, Some("view-token-41c2"), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_stops_reading_is_dropped_and_the_streams_never_wait_for_it() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let config = ServeConfig { telemetry: alertstream::telemetry::Telemetry::on(), ..ServeConfig::default() };
    let server = TestServer::with(default_rules(), config).await;
    // A watcher that reads its response head, then nothing; a small receive buffer, so that what the kernels hold
    // for it (its buffer and the server's send buffer, at most 4 MiB by default) is far less than what is sent.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    let mut slow = socket.connect(server.http_addr).await.unwrap();
    let request = format!("GET /events HTTP/1.1\r\nHost: {}\r\n\r\n", server.http_addr);
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 4096];
    let n = slow.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).contains("text/event-stream"));

    // Far more events than the kernels and the watcher's queue hold: each reading and its alert is one, about
    // 10 MB in all. The stream is answered in full while the watcher reads nothing.
    let readings: Vec<_> = (1..=30_000u64)
        .map(|seq| common::reading("busy", seq, &[("temperature", if seq % 2 == 1 { 5.0 } else { 20.0 })]))
        .collect();
    let (alerts, status) = common::stream_all(&mut server.client().await, readings).await;
    assert!(status.is_ok() && alerts.len() == 30_000, "{status:?}, {} alerts", alerts.len());
    // It is dropped while it still reads nothing, so the streams publish for no one (polled, bounded: the page's
    // task drops it as soon as its queue is full).
    let mut watchers = metric(&server, "alertstream_view_watchers").await;
    for _ in 0..100 {
        if watchers == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        watchers = metric(&server, "alertstream_view_watchers").await;
    }
    assert_eq!(watchers, 0.0, "the watcher that stopped reading is still subscribed");

    // The watcher fell behind: once it reads again, what was buffered for it arrives and its response ends (the
    // chunked body's last chunk) rather than going on with a gap.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        let mut chunk = vec![0u8; 64 << 10];
        while !rest.ends_with(b"0\r\n\r\n") {
            let n = slow.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed before the response ended");
            rest.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(ended.is_ok(), "the slow watcher's response never ended ({} bytes read)", rest.len());
    // It got a prefix of the events and no more: fewer than were sent.
    let events = String::from_utf8_lossy(&rest).matches("data: {").count();
    assert!(events < 60_000, "{events} events");
}

/// The value of the unlabelled metric `name`, from the server's `/metrics`.
async fn metric(server: &TestServer, name: &str) -> f64 {
    let (_, samples) = common::scrape(server).await;
    *samples.get(name).unwrap_or_else(|| panic!("no {name}"))
}
