//! nginx (Debian's 1.22, installed by `scripts/setup-tools.sh`) in front of replicas on loopback, with the
//! deployment's configuration file, `deploy/nginx/alertstream.conf`, as it is.

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

use super::daemon::free_port;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx with the deployment's configuration file copied unchanged into a scratch prefix, beside the listen and
/// upstream files a deployment writes; stopped (gracefully: its workers too) when dropped.
pub struct Nginx {
    prefix: tempfile::TempDir,
    /// Where nginx listens for gRPC.
    pub addr: SocketAddr,
    child: Child,
}

impl Nginx {
    /// Starts nginx in front of `replicas`.
    pub fn start(replicas: &[SocketAddr]) -> Self {
        assert!(Path::new(NGINX).exists(), "{NGINX} is missing: run scripts/setup-tools.sh");
        let prefix = tempfile::tempdir().unwrap();
        let dir = prefix.path();
        std::fs::create_dir(dir.join("conf.d")).unwrap();
        let deployed = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/alertstream.conf");
        std::fs::copy(deployed, dir.join("conf.d/alertstream.conf")).unwrap();
        let addr = free_port();
        std::fs::write(dir.join("conf.d/alertstream.listen"), format!("listen {addr} http2;\n")).unwrap();
        write_upstream(dir, replicas);
        // What Debian's /etc/nginx/nginx.conf provides around conf.d, kept inside the scratch prefix.
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include conf.d/alertstream.conf;\n}}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let check = nginx_command(dir).arg("-t").output().unwrap();
        assert!(check.status.success(), "nginx -t: {}", String::from_utf8_lossy(&check.stderr));
        let child = nginx_command(dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        Self { prefix, addr, child }
    }

    /// Rewrites the upstream file and has nginx reload it, as a deployment adds a replica.
    pub fn reload_with(&self, replicas: &[SocketAddr]) {
        write_upstream(self.prefix.path(), replicas);
        let reload = nginx_command(self.prefix.path()).args(["-s", "reload"]).output().unwrap();
        assert!(reload.status.success(), "nginx -s reload: {}", String::from_utf8_lossy(&reload.stderr));
    }

    /// nginx's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A graceful stop takes the workers down with the master; without a pid file yet, the master is killed.
        let stopped = nginx_command(self.prefix.path()).args(["-s", "stop"]).output();
        if !stopped.is_ok_and(|out| out.status.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// nginx run on the scratch prefix `dir` and its `nginx.conf`.
fn nginx_command(dir: &Path) -> Command {
    let mut command = Command::new(NGINX);
    command.arg("-p").arg(dir).arg("-c").arg(dir.join("nginx.conf"));
    command
}

/// The upstream file: one `server` line per replica.
fn write_upstream(dir: &Path, replicas: &[SocketAddr]) {
    let servers: String = replicas.iter().map(|r| format!("server {r};\n")).collect();
    std::fs::write(dir.join("conf.d/alertstream.upstream"), servers).unwrap();
}
