//! Counterparts a test starts as processes of their own (Alertmanager, nats-server, a nats-server cluster): their
//! output discarded, killed and reaped when dropped.

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

    /// Kills the process (by its pid, with SIGKILL: no goodbye to its peers) and reaps it, as a crash or a lost
    /// machine would end it.
    #[allow(dead_code)] // Not every test binary that includes this module stops one mid-test.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
    wait_for_nats(addr).await;
    running
}

/// A three-node nats-server cluster with JetStream on loopback, each node with its own store; killed when dropped.
#[allow(dead_code)] // Not every test binary that includes this module runs a cluster.
pub struct NatsCluster {
    /// Each node's client address, in node order.
    pub addrs: Vec<SocketAddr>,
    /// Each node's server name (`n0`, `n1`, `n2`), as JetStream's stream info names its leader and replicas.
    pub names: Vec<String>,
    /// The processes, `None` once killed.
    nodes: Vec<Option<Daemon>>,
}

#[allow(dead_code)] // Not every test binary that includes this module runs a cluster.
impl NatsCluster {
    /// The nodes as a sink's `url` lists them: `nats://a,nats://b,nats://c`.
    pub fn url(&self) -> String {
        self.addrs.iter().map(|a| format!("nats://{a}")).collect::<Vec<_>>().join(",")
    }

    /// The client addresses of the nodes still running.
    pub fn running(&self) -> Vec<SocketAddr> {
        self.addrs.iter().zip(&self.nodes).filter(|(_, node)| node.is_some()).map(|(addr, _)| *addr).collect()
    }

    /// Kills the node named `name` (see [`Daemon::kill`]).
    pub fn kill(&mut self, name: &str) {
        let index = self.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no node `{name}`"));
        let mut node = self.nodes[index].take().unwrap_or_else(|| panic!("`{name}` was already killed"));
        node.kill();
    }
}

/// Starts three nats-servers with JetStream on loopback (free ports), storing under `dir`, routed to each other as
/// one cluster; returns once each takes connections and JetStream answers for the account, the cluster's meta leader
/// elected. A stream of three replicas may still be refused for a moment after (until every peer has joined the
/// meta group): make it in a bounded retry.
#[allow(dead_code)] // Not every test binary that includes this module runs a cluster.
pub async fn nats_cluster(dir: &Path) -> NatsCluster {
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<SocketAddr> = (0..3).map(|_| free_port()).collect();
    let names: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
    let mut nodes = Vec::new();
    for (i, (addr, route)) in addrs.iter().zip(&routes).enumerate() {
        let (port, store, listen) = (addr.port().to_string(), dir.join(&names[i]), format!("nats://{route}"));
        let peers: Vec<String> = routes.iter().filter(|r| *r != route).map(|r| format!("nats://{r}")).collect();
        let peers = peers.join(",");
        let args = [
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port,
            "-sd",
            store.to_str().unwrap(),
            "-n",
            &names[i],
            "--cluster_name",
            "alertstream-test",
            "--cluster",
            &listen,
            "--routes",
            &peers,
        ];
        nodes.push(Some(Daemon::start(NATS_SERVER, args)));
    }
    for addr in &addrs {
        wait_for_nats(*addr).await;
    }
    // The account's JetStream answers once the meta leader is elected; before, the request errs or goes unanswered.
    // (Asked by hand: async-nats 0.51's `query_account` expects fields that nats-server 2.9 does not send.)
    let client = async_nats::connect(addrs[0].to_string()).await.unwrap();
    let wait = std::time::Duration::from_millis(500);
    for _ in 0..60 {
        if let Ok(Ok(reply)) = tokio::time::timeout(wait, client.request("$JS.API.INFO", Default::default())).await
            && serde_json::from_slice::<serde_json::Value>(&reply.payload).is_ok_and(|v| v.get("error").is_none())
        {
            return NatsCluster { addrs, names, nodes };
        }
        // Real processes electing a leader: polled, bounded.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the nats-server cluster's JetStream never answered");
}

/// Returns once a nats-server takes connections on `addr` (polled, bounded).
#[allow(dead_code)] // Not every test binary that includes this module runs NATS.
async fn wait_for_nats(addr: SocketAddr) {
    for _ in 0..600 {
        if async_nats::connect(addr.to_string()).await.is_ok() {
            return;
        }
        // A real process starting: polled, bounded.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nats-server did not start on {addr}");
}
