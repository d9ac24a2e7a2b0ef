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
