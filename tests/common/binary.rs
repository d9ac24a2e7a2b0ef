//! The real `alertstream` binary, serving on an ephemeral port, with its JSON log captured.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use tonic::transport::Channel;

/// A running server process; killed on drop if a test fails before it exits.
pub struct Binary {
    child: Child,
    /// Whether the child leads a process group of its own (signals then go to the whole group).
    group: bool,
    pub addr: SocketAddr,
    /// Every log line so far (JSON).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts `alertstream serve` on 127.0.0.1:0 with `args` added, and waits until it says where it listens.
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alertstream"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]).args(args);
        if !args.contains(&"--http-listen") {
            command.args(["--http-listen", ""]);
        }
        // The file watch says at debug level when a change needs no reload: tests wait for that instead of sleeping.
        command.env("RUST_LOG", "info,alertstream::file_watch=debug");
        Self::spawn(command, false, Duration::from_secs(30))
    }

    /// Spawns `command`, which serves with a JSON log on stderr, and waits up to `startup` until it says where it
    /// listens. With `group`, the command leads a process group of its own and signals go to the group (a shell
    /// and what it starts).
    pub fn spawn(mut command: Command, group: bool, startup: Duration) -> Self {
        if group {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("server: {line}"); // shown when a test fails
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if entry["fields"]["message"] == "Serving gRPC." {
                    let _ = tx.send(entry["fields"]["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = rx.recv_timeout(startup).expect("the server logs its address");
        Self { child, group, addr, log }
    }

    /// The process id (to stop and continue it, as a stalled machine would).
    #[allow(dead_code)] // Not every test binary that includes this module stalls a server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn channel(&self) -> Channel {
        alertstream::client::endpoint(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    /// Sends a signal (`TERM`, `HUP`) to the process (or its group).
    pub fn signal(&self, name: &str) {
        assert!(self.send(name), "kill -{name} failed");
    }

    /// Sends a signal to the process named `exe` in this process's group (the server a shell started), so that the
    /// shell reports the server's own exit.
    pub fn signal_member(&self, name: &str, exe: &str) {
        assert!(self.group, "only a group leader has members");
        let group = self.child.id().to_string();
        let status = Command::new("pkill").args([&format!("-{name}"), "-g", &group, "-x", exe]).status().unwrap();
        assert!(status.success(), "no process `{exe}` in group {group}");
    }

    fn send(&self, name: &str) -> bool {
        let target = if self.group { format!("-{}", self.child.id()) } else { self.child.id().to_string() };
        Command::new("kill").args([&format!("-{name}"), "--", &target]).status().is_ok_and(|s| s.success())
    }

    /// Waits (bounded) until a log line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..400 {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            // A real process's log arrives when it arrives: polled, bounded, no span asserted.
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no log line with {needle:?} within 10 s");
    }

    /// Where the HTTP endpoint listens (start the server with `--http-listen 127.0.0.1:0`).
    #[allow(dead_code)] // Not every test binary that includes this module serves HTTP.
    pub async fn http_addr(&self) -> SocketAddr {
        self.logged_addr("Serving HTTP/JSON.").await
    }

    /// Where the metrics are served (start the server with `--metrics-listen 127.0.0.1:0`).
    #[allow(dead_code)] // Not every test binary that includes this module serves metrics.
    pub async fn metrics_addr(&self) -> SocketAddr {
        self.logged_addr("Serving metrics.").await
    }

    /// The `addr` of the log line with `message`.
    async fn logged_addr(&self, message: &str) -> SocketAddr {
        let line = self.wait_for_log(message).await;
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        entry["fields"]["addr"].as_str().unwrap().parse().unwrap()
    }

    /// How many log lines contain `needle`.
    pub fn count_log(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            // A real process's exit: polled, bounded, no span asserted.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not exit within 15 s of shutdown");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            if self.group {
                self.send("KILL");
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
