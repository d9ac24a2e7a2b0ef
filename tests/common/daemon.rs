//! Counterparts a test starts as processes of their own (Alertmanager, nats-server): their output discarded, killed
//! and reaped when dropped.

use std::{
    ffi::OsStr,
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

/// A running counterpart process, killed on drop.
pub struct Daemon(Child);

impl Daemon {
    /// Starts `program` (one `scripts/setup-tools.sh` installs) with `args`.
    pub fn start(program: &str, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Self {
        assert!(Path::new(program).exists(), "{program} is missing: run scripts/setup-tools.sh");
        let child = Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        Self(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address nothing listens on at the moment.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Debian's nats-server, which `scripts/setup-tools.sh` installs.
const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// Starts nats-server with JetStream on `addr`, storing under `dir`; returns once it takes connections.
#[allow(dead_code)] // Not every test binary that includes this module runs NATS.
pub async fn nats_server(addr: SocketAddr, dir: &Path) -> Daemon {
    let port = addr.port().to_string();
    let args = ["-js", "-a", "127.0.0.1", "-p", &port, "-sd", dir.to_str().unwrap()];
    let running = Daemon::start(NATS_SERVER, args);
    for _ in 0..600 {
        if async_nats::connect(addr.to_string()).await.is_ok() {
            return running;
        }
        // A real process starting: polled, bounded.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nats-server did not start");
}
