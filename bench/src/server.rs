//! Starting a server process for one measurement, learning its address, and stopping it.
//!
//! alertstream runs as `alertstream serve --listen 127.0.0.1:0 --http-listen "" --log-format json`; its address is
//! the `addr` of its JSON log line whose message is `Serving gRPC.`, and its log keeps being read so that it never
//! writes into a closed pipe. The baseline prints `listening on ADDR` on stdout. The process is killed when the
//! [`ServerProcess`] is dropped, on failure as on success.

use std::{
    fmt,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

use crate::{BoxError, cpu};

/// Which server a measurement runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    /// The product, `alertstream serve`.
    Alertstream,
    /// The product with its Prometheus metrics on (`--metrics-listen`).
    AlertstreamMetrics,
    /// The product keeping sensor states (`--state-dir`, a fresh scratch directory).
    AlertstreamState,
    /// The bare-tonic baseline, `alertstream-baseline`.
    Baseline,
}

impl Server {
    /// The binary's file name.
    pub fn binary_name(self) -> &'static str {
        match self {
            Self::Alertstream | Self::AlertstreamMetrics | Self::AlertstreamState => "alertstream",
            Self::Baseline => "alertstream-baseline",
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlertstreamMetrics => f.write_str("alertstream with metrics"),
            Self::AlertstreamState => f.write_str("alertstream with a state store"),
            _ => f.write_str(self.binary_name()),
        }
    }
}

/// A running server, killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    /// alertstream's latest `Load.` log line (every 10 s); never for the baseline.
    load: Arc<Mutex<Option<Load>>>,
    /// The state directory of [`Server::AlertstreamState`], removed after the process.
    _scratch: Option<tempfile::TempDir>,
}

/// What alertstream's `Load.` log line (target `alertstream::load`) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Tokio tasks alive in the server.
    pub tasks: u64,
    /// Streams open.
    pub streams: u64,
}

impl ServerProcess {
    /// Starts `server` from beside this executable (see [`locate`](Self::locate)); `rules` is alertstream's rules
    /// file (its default rules when `None`).
    pub fn start(server: Server, rules: Option<&Path>) -> Result<Self, BoxError> {
        Self::start_with(server, rules, &[])
    }

    /// As [`start`](Self::start), with `args` added to alertstream's `serve` command line (the baseline takes none).
    pub fn start_with(server: Server, rules: Option<&Path>, args: &[&str]) -> Result<Self, BoxError> {
        Self::start_binary(&Self::locate(server)?, server, rules, args)
    }

    /// The path of `server`'s binary beside this executable (see [`sibling_binary`]: the release binaries sit
    /// together in `target/release`), or an error saying how to build it.
    pub fn locate(server: Server) -> Result<PathBuf, BoxError> {
        let binary = sibling_binary(server.binary_name())?;
        if binary.is_file() {
            Ok(binary)
        } else {
            Err(format!(
                "{} not found: build the servers beside the load generator with \
                 `cargo build --release -p alertstream -p alertstream-bench` (scripts/bench.sh does)",
                binary.display()
            )
            .into())
        }
    }

    /// Starts `binary`, which is `server`; `rules` and `args` as for [`start_with`](Self::start_with).
    pub fn start_binary(binary: &Path, server: Server, rules: Option<&Path>, args: &[&str]) -> Result<Self, BoxError> {
        let spawned = |command: &mut Command| {
            command.spawn().map_err(|e| -> BoxError { format!("cannot start {}: {e}", binary.display()).into() })
        };
        match server {
            Server::Alertstream | Server::AlertstreamMetrics | Server::AlertstreamState => {
                let mut command = Command::new(binary);
                command.args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "", "--log-format", "json"]);
                if server == Server::AlertstreamMetrics {
                    command.args(["--metrics-listen", "127.0.0.1:0"]);
                }
                let scratch = match server {
                    Server::AlertstreamState => Some(tempfile::tempdir()?),
                    _ => None,
                };
                if let Some(dir) = &scratch {
                    command.arg("--state-dir").arg(dir.path());
                }
                if let Some(rules) = rules {
                    command.arg("--rules").arg(rules);
                }
                command.args(args);
                command.env("RUST_LOG", "info,alertstream::load=debug");
                command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
                let load = Arc::new(Mutex::new(None));
                let mut process = Self {
                    child: spawned(&mut command)?,
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    load: Arc::clone(&load),
                    _scratch: scratch,
                };
                let stderr = process.child.stderr.take().ok_or("no stderr")?;
                process.addr = alertstream_addr(stderr, load)?;
                Ok(process)
            }
            Server::Baseline => {
                let mut command = Command::new(binary);
                command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
                let mut process = Self {
                    child: spawned(&mut command)?,
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    load: Arc::default(),
                    _scratch: None,
                };
                let mut line = String::new();
                BufReader::new(process.child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
                let addr = line.trim().strip_prefix("listening on ");
                process.addr = addr.and_then(|a| a.parse().ok()).ok_or_else(|| {
                    format!("the baseline did not say where it listens (its first line: {:?})", line.trim())
                })?;
                Ok(process)
            }
        }
    }

    /// Its gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) it has used.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu::cpu_seconds(self.pid())
    }

    /// Its resident set size in KiB.
    pub fn rss_kib(&self) -> Option<f64> {
        cpu::rss_kib(self.pid())
    }

    /// alertstream's latest `Load.` line, once it has logged one.
    pub fn load(&self) -> Option<Load> {
        *self.load.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads alertstream's JSON log until its `Serving gRPC.` line, returns that line's `addr`, and leaves a thread
/// reading the rest of the log, keeping its latest `Load.` line in `load`.
fn alertstream_addr(stderr: std::process::ChildStderr, load: Arc<Mutex<Option<Load>>>) -> Result<SocketAddr, BoxError> {
    let mut lines = BufReader::new(stderr).lines();
    let mut addr = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
            && entry["fields"]["message"] == "Serving gRPC."
        {
            addr = entry["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
            break;
        }
        if seen.len() < 20 {
            seen.push(line);
        }
    }
    // Keep reading its log, so that the server never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            let fields = &entry["fields"];
            if fields["message"] == "Load."
                && let (Some(tasks), Some(streams)) = (fields["alive_tasks"].as_u64(), fields["open_streams"].as_u64())
            {
                *load.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Load { tasks, streams });
            }
        }
    });
    addr.ok_or_else(|| format!("alertstream did not say where it listens; its log:\n{}", seen.join("\n")).into())
}

/// The path of a file named `name` in the directory of this executable, or of the directory above it when this
/// executable is a test in `target/<profile>/deps`: where cargo puts a workspace's binaries.
pub fn sibling_binary(name: &str) -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().ok_or("this executable has no directory")?;
    if dir.file_name().is_some_and(|d| d == "deps") {
        dir = dir.parent().ok_or("deps has no parent")?;
    }
    Ok(dir.join(name))
}
