//! The sinks' counterparts for the benchmark's sinks table, when this machine has them (Debian's `nats-server` and
//! `prometheus-alertmanager`, which `scripts/setup-tools.sh` installs): started on loopback for the table and
//! killed after it, so that "every sink on" delivers for real.

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::BoxError;

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// The counterparts running, each with its address; `None` where this machine lacks it.
pub struct Counterparts {
    children: Vec<Child>,
    /// NATS with JetStream.
    pub nats: Option<SocketAddr>,
    /// Alertmanager.
    pub alertmanager: Option<SocketAddr>,
}

impl Drop for Counterparts {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<SocketAddr, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits (bounded) until `addr` takes connections.
async fn wait_for(addr: SocketAddr, what: &str) -> Result<(), BoxError> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{what} did not start on {addr}").into())
}

impl Counterparts {
    /// Starts those this machine has, their files under `dir`.
    ///
    /// # Errors
    /// One is installed but does not start.
    pub async fn start(dir: &Path) -> Result<Self, BoxError> {
        let mut running = Self { children: Vec::new(), nats: None, alertmanager: None };
        if Path::new(NATS_SERVER).exists() {
            let addr = free_port()?;
            let store = dir.join("nats").display().to_string();
            let args = ["-js", "-a", "127.0.0.1", "-p", &addr.port().to_string(), "-sd", &store].map(str::to_owned);
            running.nats = Some(running.spawn(NATS_SERVER, &args, addr).await?);
        }
        if Path::new(ALERTMANAGER).exists() {
            let addr = free_port()?;
            let config = dir.join("alertmanager.yml");
            // Alerts are taken and grouped; notifications go nowhere.
            std::fs::write(&config, "route:\n  receiver: none\nreceivers:\n  - name: none\n")?;
            let args = [
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", dir.join("alertmanager").display()),
                format!("--web.listen-address={addr}"),
                "--cluster.listen-address=".to_owned(),
            ];
            running.alertmanager = Some(running.spawn(ALERTMANAGER, &args, addr).await?);
        }
        Ok(running)
    }

    /// Starts `program` with `args`, its output discarded, and waits until it listens on `addr`.
    async fn spawn(&mut self, program: &str, args: &[String], addr: SocketAddr) -> Result<SocketAddr, BoxError> {
        let child = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        self.children.push(child);
        wait_for(addr, program).await?;
        Ok(addr)
    }
}
