//! The `alertstream` command line: parse flags, set up logging, then serve or check. Nothing else lives here.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use alertstream::{
    auth::{self, TokenSet},
    byte_size::parse_byte_size,
    clock::Clock,
    config::{self, Security, ServeConfig},
    connections::ConnectionPolicy,
    file_watch,
    logging::{self, complain, say},
    reload, rule_test, server, shutdown, simulate,
    sinks::{SinkOptions, Sinks},
    state_store::{EmbeddedStore, NatsStore, SensorStates, StateStore},
    telemetry::Telemetry,
    tls::{self, TlsFiles},
};
use alertstream_engine::{RuleSet, format_duration, parse_duration};
use alertstream_rules::RulesFile;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

/// Real-time alerting for sensor streams: readings in, alerts out, over one gRPC stream.
#[derive(Debug, Parser)]
#[command(name = "alertstream", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (with the embedded default rules unless --rules is given).
    Serve(Box<ServeArgs>),
    /// Validate a rules file: a one-line summary, or every error as FILE:LINE:COL: message.
    Check {
        /// The rules file (TOML).
        file: PathBuf,
    },
    /// Run rule unit tests (TOML: input readings per sensor with times, expected alerts in order).
    Test {
        /// The test file (TOML); it names its rules file.
        file: PathBuf,
    },
    /// Simulate production-line sensors streaming to a server over M connections, printing alerts as they arrive;
    /// a stream the server ends (shutdown, maximum connection age) is opened again with backoff.
    Simulate(SimulateArgs),
    /// Replay recorded readings (JSON lines, or CSV with a timestamp column) through a rules file offline: the alerts
    /// as proto3 JSON lines on stdout, a summary per rule on stderr.
    Replay {
        /// The rules file (TOML).
        #[arg(long)]
        rules: PathBuf,
        /// How far behind its sensor's latest reading a reading may be and still be applied (500ms, 10s, 1m).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        lateness: Duration,
        /// The recorded readings: `.csv` files, or JSON lines of readings.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The server, HOST:PORT.
    #[arg(long, default_value = config::DEFAULT_LISTEN)]
    target: String,
    /// Sensors, line-1 … line-N.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    sensors: u32,
    /// Readings a second over every sensor; 0 sends as fast as the server takes them.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Connections, one stream each; the sensors are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// Readings in all, then each stream half-closes and reads what is owed; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Seed of the sensors' random draws, for a run that repeats exactly.
    #[arg(long)]
    seed: Option<u64>,
    /// The chance, per reading and metric, that an excursion (below 10 degrees, above pH 5.5) starts.
    #[arg(long, default_value_t = 0.02)]
    excursion_rate: f64,
    /// Print each alert as one proto3 JSON object a line.
    #[arg(long, conflicts_with = "summary")]
    json: bool,
    /// Print no alert: only the counts and the latency percentiles, at the end.
    #[arg(long)]
    summary: bool,
    /// Resume across reconnects (the server needs --state-dir or --state-store): the server says in `checkpoint`
    /// events what is durable, each new stream sends again what the checkpoints do not cover, and an alert the
    /// server sends again is dropped, so none is lost and none shown twice.
    #[arg(long)]
    resume: bool,
    /// The seq of each connection's first reading [default: 1; with --resume, the time in microseconds since
    /// 1970, so that a new run's seqs follow the last one's: a resuming server skips a seq its sensor has seen].
    #[arg(long)]
    first_seq: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// gRPC listen address (inside a container, 0.0.0.0:50051).
    #[arg(long, env = "ALERTSTREAM_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: String,
    /// HTTP/JSON listen address for POST /v1/evaluate; empty turns it off.
    #[arg(long, env = "ALERTSTREAM_HTTP_LISTEN", default_value = config::DEFAULT_HTTP_LISTEN)]
    http_listen: String,
    /// Rules file (TOML); replaces the embedded default rules.
    #[arg(long, env = "ALERTSTREAM_RULES")]
    rules: Option<PathBuf>,
    /// How long open streams are served after SIGTERM/SIGINT before they end UNAVAILABLE (500ms, 10s, 1m).
    #[arg(long, env = "ALERTSTREAM_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// How long the sinks (the rules file's [[sink]] tables) may take, once the streams have ended at shutdown, to
    /// deliver the alerts they hold; what they could not is counted and logged.
    #[arg(long, env = "ALERTSTREAM_SINK_FLUSH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    sink_flush_timeout: Duration,
    /// How long the sinks keep an alert firing after its stream ended while it fired; then they get its RESOLVED,
    /// marked stale, unless a stream has fired it again meanwhile.
    #[arg(long, env = "ALERTSTREAM_STALE_AFTER", default_value = "5m", value_parser = parse_duration)]
    stale_after: Duration,
    /// Keep each sensor's state (windows, detectors, firing rules) in DIR/state.redb when its stream ends and at
    /// shutdown, and restore it when the sensor streams again, so a restart neither re-learns nor re-fires.
    /// Without it, state lives with its stream.
    #[arg(long, env = "ALERTSTREAM_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Keep sensor states in a NATS JetStream key-value bucket (`alertstream_state`) at this URL instead
    /// (nats://HOST:PORT, or a JetStream cluster's nodes separated by commas), shared by replicas. Not with
    /// --state-dir.
    #[arg(long, env = "ALERTSTREAM_STATE_STORE", conflicts_with = "state_dir")]
    state_store: Option<String>,
    /// With --state-store, how many NATS servers keep a copy of each state, when the server makes the bucket (3 on
    /// a three-node JetStream cluster, so that losing one loses nothing); an existing bucket keeps its own.
    #[arg(long, env = "ALERTSTREAM_STATE_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    state_replicas: u8,
    /// Forget a sensor's saved state this long after it was saved (7d, 12h).
    #[arg(long, env = "ALERTSTREAM_STATE_TTL", default_value = "7d", value_parser = parse_duration)]
    state_ttl: Duration,
    /// With a state store, how often an open stream saves its sensors' states too (a busy stream looks at the clock
    /// once in 1,024 readings, an idle one's timer wakes it).
    #[arg(long, env = "ALERTSTREAM_STATE_SAVE_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    state_save_interval: Duration,
    /// Largest inbound message or HTTP body (4MiB, 512KiB).
    #[arg(long, env = "ALERTSTREAM_MAX_MESSAGE_SIZE", default_value = "4MiB", value_parser = parse_byte_size)]
    max_message_size: usize,
    /// How far behind its sensor's latest reading a reading may be and still be applied (else: late_reading).
    #[arg(long, env = "ALERTSTREAM_LATENESS", default_value = "60s", value_parser = parse_duration)]
    lateness: Duration,
    /// How far ahead of the server's clock a reading's time may be (else: invalid_reading naming `time`).
    #[arg(long, env = "ALERTSTREAM_MAX_FUTURE", default_value = "1m", value_parser = parse_duration)]
    max_future: Duration,
    /// Streams one HTTP/2 connection may have open at once; a client opens more as others close.
    #[arg(long, env = "ALERTSTREAM_MAX_CONCURRENT_STREAMS", default_value_t = config::DEFAULT_MAX_CONCURRENT_STREAMS)]
    max_concurrent_streams: u32,
    /// Streams the server serves at once, over every connection; a stream beyond it gets RESOURCE_EXHAUSTED at once.
    #[arg(long, env = "ALERTSTREAM_MAX_STREAMS", default_value_t = config::DEFAULT_MAX_STREAMS, value_parser = parse_cap)]
    max_streams: usize,
    /// Connections the gRPC listener serves at once; RPCs on one beyond it get RESOURCE_EXHAUSTED, then GOAWAY.
    #[arg(long, env = "ALERTSTREAM_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS, value_parser = parse_cap)]
    max_connections: usize,
    /// After this age (±10 % jitter) a connection is sent GOAWAY and its streams end UNAVAILABLE after their
    /// alerts, so clients reconnect and rebalance (30m, 1h). Off unless given.
    #[arg(long, env = "ALERTSTREAM_MAX_CONNECTION_AGE", value_parser = parse_duration)]
    max_connection_age: Option<Duration>,
    /// How long after its maximum age a connection is closed, whatever is still open on it.
    #[arg(long, env = "ALERTSTREAM_MAX_CONNECTION_AGE_GRACE", default_value = "10s", value_parser = parse_duration)]
    max_connection_age_grace: Duration,
    /// Readings a second one stream may send; one over it is not applied and yields a rate_limited alert. 0 is off.
    #[arg(long, env = "ALERTSTREAM_MAX_READINGS_PER_SECOND", default_value_t = 0)]
    max_readings_per_second: u32,
    /// Sensors one stream tracks at most; a reading of a new sensor beyond this yields a sensor_limit alert.
    #[arg(long, env = "ALERTSTREAM_MAX_SENSORS_PER_STREAM", default_value_t = config::DEFAULT_MAX_SENSORS_PER_STREAM)]
    max_sensors_per_stream: usize,
    /// Serve both listeners over TLS with this certificate chain (PEM); needs --tls-key. Reloaded when it changes.
    #[arg(long, env = "ALERTSTREAM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM); needs --tls-cert.
    #[arg(long, env = "ALERTSTREAM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: refuse clients without a certificate chaining to these CA certificates (PEM); needs --tls-cert.
    #[arg(long, env = "ALERTSTREAM_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Require `authorization: Bearer TOKEN` on every alertstream.v1 call and HTTP route, TOKEN one of this file's
    /// lines (blank lines and # comments ignored). Health and reflection stay open. Reloaded when it changes.
    #[arg(long, env = "ALERTSTREAM_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Serve Prometheus metrics at GET /metrics on this address (over TLS when TLS is on; no token). Off unless
    /// given; never on the HTTP/JSON listener.
    #[arg(long, env = "ALERTSTREAM_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Log format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, env = "ALERTSTREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

impl From<LogFormat> for logging::LogFormat {
    fn from(format: LogFormat) -> Self {
        match format {
            LogFormat::Human => logging::LogFormat::Human,
            LogFormat::Json => logging::LogFormat::Json,
        }
    }
}

/// A cap on streams or connections: at least 1 (0 would refuse everything), and at most what a semaphore holds.
fn parse_cap(text: &str) -> Result<usize, String> {
    let cap: usize = text.parse().map_err(|e| format!("{e}"))?;
    let most = tokio::sync::Semaphore::MAX_PERMITS;
    if (1..=most).contains(&cap) { Ok(cap) } else { Err(format!("must be between 1 and {most}")) }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // clap names the flag, not the variable it read: say which variable is set but empty.
            if error.use_stderr() {
                for (name, value) in std::env::vars_os() {
                    let name = name.to_string_lossy();
                    if name.starts_with("ALERTSTREAM_") && value.is_empty() && name != "ALERTSTREAM_HTTP_LISTEN" {
                        complain(&format!("note: {name} is set but empty: unset it, or give it a value"));
                    }
                }
            }
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Test { file } => test(&file),
        Command::Simulate(args) => simulate(&args),
        Command::Replay { rules, lateness, files } => replay(&rules, lateness, &files),
        Command::Serve(args) => {
            logging::init(args.log_format.into());
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => {
                    complain(&format!("alertstream: cannot start the runtime: {e}"));
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(*args))
        }
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    match alertstream_rules::load(file) {
        Ok(rules) => {
            say(&alertstream_rules::summary(&file.display().to_string(), &rules));
            ExitCode::SUCCESS
        }
        Err(e) => {
            complain(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

fn simulate(args: &SimulateArgs) -> ExitCode {
    if !(args.rate.is_finite() && args.rate >= 0.0 && (0.0..=1.0).contains(&args.excursion_rate)) {
        complain("alertstream simulate: --rate must be 0 or more, --excursion-rate between 0 and 1");
        return ExitCode::from(2);
    }
    let output = match (args.json, args.summary) {
        (true, _) => simulate::Output::Json,
        (_, true) => simulate::Output::Summary,
        _ => simulate::Output::Lines,
    };
    let plan = simulate::Plan {
        target: format!("http://{}", args.target),
        sensors: args.sensors as usize,
        rate: args.rate,
        connections: args.connections as usize,
        count: args.count,
        seed: args.seed.unwrap_or_else(|| fastrand::u64(..)),
        excursion_rate: args.excursion_rate,
        output,
        resume: args.resume,
        first_seq: args.first_seq.unwrap_or_else(|| match args.resume {
            true => Clock::System.now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64),
            false => 1,
        }),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            complain(&format!("alertstream: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let stop = match shutdown::drain_on_signal() {
            Ok(stop) => stop,
            Err(e) => {
                complain(&format!("alertstream simulate: cannot install signal handlers: {e}"));
                return ExitCode::FAILURE;
            }
        };
        match simulate::run(plan, stop.clone()).await {
            Ok(report) => {
                let summary = report.to_string();
                if output == simulate::Output::Summary {
                    say(&summary)
                } else {
                    complain(&summary)
                }
                if stop.is_cancelled() { ExitCode::from(130) } else { ExitCode::SUCCESS }
            }
            Err(e) => {
                complain(&format!("alertstream simulate: {e}"));
                ExitCode::FAILURE
            }
        }
    })
}

fn replay(rules: &std::path::Path, lateness: Duration, files: &[PathBuf]) -> ExitCode {
    let rules = match alertstream_rules::load(rules) {
        Ok(file) => file.rules,
        Err(e) => {
            complain(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    match alertstream::replay::replay(&rules, files, lateness, &mut out) {
        Ok(summary) => {
            complain(&summary.to_string());
            ExitCode::SUCCESS
        }
        Err(e) => {
            complain(&format!("alertstream replay: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn test(file: &std::path::Path) -> ExitCode {
    let outcomes = match rule_test::run(file) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            complain(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let failed = outcomes.iter().filter(|o| o.diff.is_some()).count();
    for outcome in &outcomes {
        match &outcome.diff {
            None => say(&format!("ok    {}", outcome.name)),
            Some(diff) => say(&format!("FAIL  {}\n    (- expected, + actual)\n{diff}", outcome.name)),
        }
    }
    say(&format!("{}: {} passed, {failed} failed", file.display(), outcomes.len() - failed));
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let file = match &args.rules {
        Some(path) => match alertstream_rules::load(path) {
            Ok(file) => {
                let (rules, sinks) = (file.rules.rules().len(), file.sinks.len());
                tracing::info!(file = %path.display(), rules, sinks, "Loaded rules.");
                file
            }
            Err(e) => {
                complain(&e.to_string());
                tracing::error!(file = %path.display(), "Refusing to start: the rules file has errors.");
                return ExitCode::FAILURE;
            }
        },
        None => {
            tracing::info!("No --rules given: using the embedded default rules.");
            RulesFile { rules: config::default_rules(), sinks: Vec::new() }
        }
    };
    let security = match security(&args) {
        Ok(security) => security,
        Err(e) => {
            complain(&e);
            tracing::error!("Refusing to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = ServeConfig {
        security,
        max_message_size: args.max_message_size,
        max_sensors_per_stream: args.max_sensors_per_stream,
        lateness: args.lateness,
        max_future: args.max_future,
        max_concurrent_streams: args.max_concurrent_streams,
        max_streams: args.max_streams,
        connections: ConnectionPolicy {
            max_age: args.max_connection_age,
            max_age_grace: args.max_connection_age_grace,
            max_connections: args.max_connections,
        },
        max_readings_per_second: args.max_readings_per_second,
        shutdown_grace: args.shutdown_grace,
        telemetry: if args.metrics_listen.is_some() { Telemetry::on() } else { Telemetry::off() },
        ..ServeConfig::default()
    };
    let config = match states(&args, &config) {
        Ok(states) => ServeConfig { states, ..config },
        Err(e) => {
            complain(&format!("alertstream: {e}"));
            tracing::error!("Refusing to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = SinkOptions {
        flush_timeout: args.sink_flush_timeout,
        stale_after: args.stale_after,
        clock: config.clock.clone(),
        states: config.states.clone(),
    };
    let config = ServeConfig { sinks: Sinks::new(config.telemetry.clone(), options), ..config };
    if let Err(e) = config.sinks.apply(&file.sinks, &file.rules) {
        complain(&format!("alertstream: {e}"));
        tracing::error!("Refusing to start: {e}");
        return ExitCode::FAILURE;
    }
    match run(&args, file.rules, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Server failed.");
            ExitCode::FAILURE
        }
    }
}

/// The sensor-state store `--state-dir` names, opened (off without it).
fn states(args: &ServeArgs, config: &ServeConfig) -> Result<SensorStates, String> {
    let store: Arc<dyn StateStore> = match (&args.state_dir, &args.state_store) {
        (Some(dir), _) => {
            let store = EmbeddedStore::open(dir, args.state_ttl, config.clock.clone()).map_err(|e| e.to_string())?;
            tracing::info!(dir = %dir.display(), ttl = %format_duration(args.state_ttl), "Sensor states are kept.");
            Arc::new(store)
        }
        (None, Some(url)) => {
            let store = NatsStore::open(url, args.state_ttl, usize::from(args.state_replicas))
                .map_err(|e| format!("--state-store {url}: {e}"))?;
            tracing::info!(url, ttl = %format_duration(args.state_ttl), "Sensor states are kept in NATS.");
            Arc::new(store)
        }
        (None, None) => return Ok(SensorStates::default()),
    };
    SensorStates::new(store, args.state_save_interval, config.telemetry.clone())
        .map_err(|e| format!("cannot start the state writer: {e}"))
}

/// Loads the TLS files and the token file and watches them, so that they rotate without a restart.
fn security(args: &ServeArgs) -> Result<Security, String> {
    let mut security = Security::default();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let files = TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: args.tls_client_ca.clone() };
        let configs = tls::load(&files).map_err(|e| e.to_string())?;
        let (publisher, live_tls) = tokio::sync::watch::channel(Arc::new(configs));
        file_watch::watch_files(files.paths(), move |cause| tls::reload(&files, &publisher, cause.as_str()))
            .map_err(|e| e.to_string())?;
        tracing::info!(mutual = args.tls_client_ca.is_some(), "TLS is on.");
        security.tls = Some(live_tls);
    }
    if let Some(path) = &args.auth_token_file {
        let token_set = TokenSet::load(path).map_err(|e| e.to_string())?;
        tracing::info!(file = %path.display(), tokens = token_set.len(), "Bearer tokens are required.");
        let (publisher, live_tokens) = tokio::sync::watch::channel(Arc::new(token_set));
        let file = path.clone();
        file_watch::watch_files(vec![path.clone()], move |cause| auth::reload(&file, &publisher, cause.as_str()))
            .map_err(|e| e.to_string())?;
        security.tokens = Some(live_tokens);
    }
    Ok(security)
}

async fn run(args: &ServeArgs, rules: RuleSet, config: ServeConfig) -> Result<(), String> {
    let drain = shutdown::drain_on_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let (live, rules) = tokio::sync::watch::channel(Arc::new(rules));
    match &args.rules {
        Some(path) => reload::watch_rules_file(path.clone(), live, config.sinks.clone(), config.telemetry.clone()),
        None => reload::explain_hangup_without_file(),
    }
    .map_err(|e| e.to_string())?;
    let grpc = bind_all("--listen", &args.listen).await?;
    let http = match args.http_listen.trim() {
        "" => Vec::new(),
        addr => bind_all("--http-listen", addr).await?,
    };
    let metrics = match &args.metrics_listen {
        Some(addr) => bind_all("--metrics-listen", addr).await?,
        None => Vec::new(),
    };
    server::serve(server::Listeners { grpc, http, metrics }, rules, config, drain).await.map_err(|e| e.to_string())
}

/// Binds every address `addr` (`HOST:PORT`, the host a name or an IP address) resolves to: `localhost:50051` is
/// 127.0.0.1 and ::1. An address that cannot be bound while another can (no IPv6 here, say) is logged and skipped.
async fn bind_all(flag: &str, addr: &str) -> Result<Vec<TcpListener>, String> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("{flag} `{addr}`: {e}; write HOST:PORT, as 127.0.0.1:50051 or localhost:50051"))?
        .collect();
    let mut listeners = Vec::new();
    let mut failures = Vec::new();
    for at in resolved.iter().copied().collect::<std::collections::BTreeSet<_>>() {
        match TcpListener::bind(at).await {
            Ok(listener) => listeners.push(listener),
            Err(error) => failures.push(format!("{at}: {error}")),
        }
    }
    if listeners.is_empty() {
        return Err(format!("cannot listen on {addr} ({flag}): {}", failures.join("; ")));
    }
    for failure in failures {
        tracing::warn!(
            flag,
            addr,
            "Cannot listen on one of the addresses {addr} resolves to, {failure}; serving on the rest."
        );
    }
    Ok(listeners)
}
