//! TLS, mutual TLS and bearer tokens on the real binary, with real clients: grpcurl, Python grpcio and requests
//! (`clients/python/secure_check.py`) and tonic. Certificates are made at run time (rcgen).

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Output,
};

use alertstream::pb::{self, alert_service_client::AlertServiceClient};
use common::{binary::Binary, reading};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::process::Command;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A certificate authority that signs server and client certificates.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key, as PEM.
    fn sign(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// The files of one test: a server CA and certificate, a client CA and certificate, a token file.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Writes `text` to `name` by renaming a complete file over it, as an operator's tooling would.
    fn write(&self, name: &str, text: &str) {
        let staged = self.path(&format!(".{name}.new"));
        std::fs::write(&staged, text).unwrap();
        std::fs::rename(staged, self.path(name)).unwrap();
    }

    /// A server certificate for 127.0.0.1 and localhost from a new CA: `ca.pem`, `server.pem`, `server.key`.
    fn server_pki(&self, ca_name: &str) -> Authority {
        let ca = Authority::new(ca_name);
        let (cert, key) = ca.sign(&["localhost", "127.0.0.1"]);
        self.write("ca.pem", &ca.pem());
        self.write("server.pem", &cert);
        self.write("server.key", &key);
        ca
    }

    /// A client CA and a client certificate it signed: `client-ca.pem`, `client.pem`, `client.key`.
    fn client_pki(&self) {
        let ca = Authority::new("alertstream test client CA");
        let (cert, key) = ca.sign(&["sensor-gateway-1"]);
        self.write("client-ca.pem", &ca.pem());
        self.write("client.pem", &cert);
        self.write("client.key", &key);
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn run(mut command: Command) -> Output {
    command.kill_on_drop(true);
    tokio::time::timeout(std::time::Duration::from_secs(120), command.output()).await.expect("finishes").unwrap()
}

/// The real grpcurl with `args` (TLS flags, headers), then the address and what follows it.
async fn grpcurl(args: &[&str], addr: SocketAddr, rest: &[&str]) -> Output {
    let mut command = Command::new(repo().join(".venv/bin/grpcurl"));
    command.args(args).arg(addr.to_string()).args(rest);
    run(command).await
}

/// A reading for Evaluate, as grpcurl's `-d`.
const READING: &str = r#"{"sensor_id": "line-1", "values": {"temperature": 8}}"#;

/// grpcurl's Evaluate of [`READING`] with `flags`.
async fn grpcurl_evaluate(flags: &[&str], addr: SocketAddr) -> Output {
    grpcurl(&[flags, &["-d", READING]].concat(), addr, &["alertstream.v1.AlertService/Evaluate"]).await
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs `clients/python/secure_check.py` with `args` added; fails the test unless it prints OK.
async fn secure_check(server: &Binary, files: &Files, args: &[&str]) {
    let http = server.http_addr().await.to_string();
    let mut command = Command::new(repo().join(".venv/bin/python"));
    command.arg(repo().join("clients/python/secure_check.py"));
    command.args(["--target", &server.addr.to_string(), "--http", &http, "--ca", &files.arg("ca.pem")]).args(args);
    let output = run(command).await;
    assert!(output.status.success() && text(&output).starts_with("OK "), "{}", text(&output));
}

/// A tonic client over TLS trusting `ca` (PEM), with a client identity if given.
async fn tls_channel(
    addr: SocketAddr,
    ca: &str,
    identity: Option<(&Path, &Path)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()));
    }
    Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls)?.connect().await
}

/// Evaluate with `token` as bearer token, if any.
async fn evaluate(channel: Channel, token: Option<&str>) -> Result<pb::Evaluation, tonic::Status> {
    let mut request = tonic::Request::new(reading("line-1", 1, &[("temperature", 8.0)]));
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    AlertServiceClient::new(channel).evaluate(request).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn tls_serves_grpcurl_grpcio_and_requests_and_refuses_plaintext() {
    let files = Files::new();
    files.server_pki("alertstream test CA");
    let (cert, key) = (files.arg("server.pem"), files.arg("server.key"));
    let server = Binary::start(&["--tls-cert", &cert, "--tls-key", &key, "--http-listen", "127.0.0.1:0"]);
    let cacert = files.arg("ca.pem");

    let evaluated = grpcurl_evaluate(&["-cacert", &cacert], server.addr).await;
    assert!(evaluated.status.success() && text(&evaluated).contains("temp too low"), "{}", text(&evaluated));
    let listed = grpcurl(&["-cacert", &cacert], server.addr, &["list"]).await;
    assert!(text(&listed).contains("alertstream.v1.AlertService"), "{}", text(&listed));
    // A client that does not trust the CA refuses the server; one in plaintext is refused by it.
    let untrusted = grpcurl(&[], server.addr, &["list"]).await;
    assert!(!untrusted.status.success() && text(&untrusted).contains("certificate"), "{}", text(&untrusted));
    let plaintext = grpcurl(&["-plaintext"], server.addr, &["list"]).await;
    assert!(!plaintext.status.success(), "{}", text(&plaintext));

    secure_check(&server, &files, &[]).await;
    let channel = tls_channel(server.addr, &std::fs::read_to_string(&cacert).unwrap(), None).await.unwrap();
    assert_eq!(evaluate(channel, None).await.unwrap().status, "temp too low");
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_from_the_client_ca() {
    let files = Files::new();
    files.server_pki("alertstream test CA");
    files.client_pki();
    let args = ["--tls-cert", &files.arg("server.pem"), "--tls-key", &files.arg("server.key")];
    let server = Binary::start(
        &[&args[..], &["--tls-client-ca", &files.arg("client-ca.pem"), "--http-listen", "127.0.0.1:0"]].concat(),
    );
    let (cacert, cert, key) = (files.arg("ca.pem"), files.arg("client.pem"), files.arg("client.key"));

    let without = grpcurl_evaluate(&["-cacert", &cacert], server.addr).await;
    assert!(!without.status.success(), "{}", text(&without));
    let with = grpcurl_evaluate(&["-cacert", &cacert, "-cert", &cert, "-key", &key], server.addr).await;
    assert!(with.status.success() && text(&with).contains("temp too low"), "{}", text(&with));
    // A certificate from another CA (here: the server's own) is not a client certificate this server accepts.
    let foreign = grpcurl_evaluate(
        &["-cacert", &cacert, "-cert", &files.arg("server.pem"), "-key", &files.arg("server.key")],
        server.addr,
    )
    .await;
    assert!(!foreign.status.success(), "{}", text(&foreign));

    secure_check(&server, &files, &["--cert", &cert, "--key", &key]).await;
}

#[tokio::test]
async fn bearer_tokens_guard_the_alert_service_and_http_but_not_health_or_reflection() {
    let files = Files::new();
    files.server_pki("alertstream test CA");
    files.write("tokens", "# operators\n\nline-gateway-7f3a9c\n  dashboard-2b8e \n");
    let args = ["--tls-cert", &files.arg("server.pem"), "--tls-key", &files.arg("server.key")];
    let more =
        ["--auth-token-file", &files.arg("tokens"), "--http-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];
    let server = Binary::start(&[&args[..], &more[..]].concat());
    let cacert = files.arg("ca.pem");

    let without = grpcurl_evaluate(&["-cacert", &cacert], server.addr).await;
    assert!(
        text(&without).contains("Unauthenticated") && text(&without).contains("missing bearer token"),
        "{}",
        text(&without)
    );
    let wrong =
        grpcurl_evaluate(&["-cacert", &cacert, "-H", "authorization: Bearer line-gateway-7f3a9"], server.addr).await;
    assert!(
        text(&wrong).contains("Unauthenticated") && text(&wrong).contains("invalid bearer token"),
        "{}",
        text(&wrong)
    );
    for token in ["line-gateway-7f3a9c", "dashboard-2b8e"] {
        let header = format!("authorization: Bearer {token}");
        let with = grpcurl_evaluate(&["-cacert", &cacert, "-H", &header], server.addr).await;
        assert!(with.status.success() && text(&with).contains("temp too low"), "{}", text(&with));
    }
    // Discovery and probes need no token.
    let listed = grpcurl(&["-cacert", &cacert], server.addr, &["list"]).await;
    assert!(listed.status.success() && text(&listed).contains("alertstream.v1.AlertService"), "{}", text(&listed));
    let health = grpcurl(&["-cacert", &cacert], server.addr, &["grpc.health.v1.Health/Check"]).await;
    assert!(health.status.success() && text(&health).contains("SERVING"), "{}", text(&health));

    // The metrics listener is served over TLS and needs no token.
    let metrics = server.metrics_addr().await.to_string();
    secure_check(&server, &files, &["--token", "dashboard-2b8e", "--metrics", &metrics]).await;
    let log = server.log.lock().unwrap().join("\n");
    assert!(!log.contains("line-gateway-7f3a9c") && !log.contains("dashboard-2b8e"), "a token is in the log");
}

#[tokio::test]
async fn certificates_and_tokens_rotate_without_a_restart() {
    let files = Files::new();
    files.server_pki("first CA");
    let first_ca = std::fs::read_to_string(files.path("ca.pem")).unwrap();
    files.write("tokens", "first-token\n");
    let args = ["--tls-cert", &files.arg("server.pem"), "--tls-key", &files.arg("server.key")];
    let server = Binary::start(&[&args[..], &["--auth-token-file", &files.arg("tokens")]].concat());
    let channel = tls_channel(server.addr, &first_ca, None).await.unwrap();
    assert!(evaluate(channel.clone(), Some("first-token")).await.is_ok());

    files.write("tokens", "second-token\n");
    server.wait_for_log("Reloaded the bearer tokens.").await;
    let refused = evaluate(channel.clone(), Some("first-token")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(evaluate(channel.clone(), Some("second-token")).await.is_ok());

    // A broken certificate file is rejected and the old certificate stays live.
    files.write("server.pem", "not a certificate\n");
    server.wait_for_log("Rejected the TLS files").await;
    assert!(evaluate(tls_channel(server.addr, &first_ca, None).await.unwrap(), Some("second-token")).await.is_ok());

    // A new certificate from a new CA: new connections get it, so a client trusting only the first CA refuses them.
    files.server_pki("second CA");
    server.wait_for_log("Reloaded the TLS certificate").await;
    let second_ca = std::fs::read_to_string(files.path("ca.pem")).unwrap();
    assert!(evaluate(tls_channel(server.addr, &second_ca, None).await.unwrap(), Some("second-token")).await.is_ok());
    assert!(
        tls_channel(server.addr, &first_ca, None).await.is_err(),
        "the first CA's trust no longer reaches the server"
    );
    // The connection made before the rotation goes on.
    assert!(evaluate(channel, Some("second-token")).await.is_ok());
}
