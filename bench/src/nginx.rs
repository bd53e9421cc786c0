//! A real server: Debian's nginx serving a 512-byte static file on 127.0.0.1, and Apache's
//! benchmark tool (`ab -c 4`, no `-k`: a new TCP connection per request) asking for it. nginx runs from a
//! private prefix under a temp dir, with a config of its own and `daemon off` (never
//! /etc/nginx, never the system service), as a child of the bench in its accounted cgroup, and
//! is stopped when the measurement ends or fails.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::{
    cgroup::BenchCgroup,
    server::{self, Server},
};

/// The size of the file served.
pub const FILE_BYTES: usize = 512;
/// Concurrent requests `ab` keeps in flight.
const CONCURRENCY: usize = 4;
/// nginx's workers run as Debian's web server user, as they do in the packaged service.
const WORKER_USER: &str = "www-data";

/// nginx and ab, where Debian installs them (`cargo xtask bench` does).
#[derive(Debug, Clone)]
pub struct Tools {
    pub nginx: PathBuf,
    pub ab: PathBuf,
}

impl Tools {
    /// Both tools, or which one is missing.
    pub fn find() -> Result<Self, &'static str> {
        let nginx = server::installed(&["/usr/sbin/nginx"]).ok_or("nginx is not installed")?;
        let ab =
            server::installed(&["/usr/bin/ab"]).ok_or("ab (apache2-utils) is not installed")?;
        Ok(Self { nginx, ab })
    }
}

/// The configuration: Debian's defaults where they matter for a static file (`sendfile`,
/// `tcp_nopush`, one worker per CPU), no access log (disk writes are not what is measured),
/// every path inside `dir`.
fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process on;
user {WORKER_USER};
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type text/html;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {d}/html;
    }}
}}
"
    )
}

/// A running nginx serving `/small.html`.
pub struct Nginx {
    server: Server,
    port: u16,
    /// The prefix: config, file, logs, temp paths; removed on drop (after `server` stops).
    dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(tools: &Tools, cgroup: &BenchCgroup) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sockstats-bench-nginx-")
            .tempdir()
            .context("tempdir")?;
        // The workers (not root) read the file through the directory.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        fs::create_dir(dir.path().join("html"))?;
        fs::write(dir.path().join("html/small.html"), [b'x'; FILE_BYTES])?;
        let port = server::free_port()?;
        let conf = dir.path().join("nginx.conf");
        fs::write(&conf, config(dir.path(), port)).context("write nginx.conf")?;
        let server = Server::start(
            Command::new(&tools.nginx)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                // Where nginx logs before it has read the config.
                .arg("-e")
                .arg(dir.path().join("error.log")),
            cgroup,
            &dir.path().join("nginx.out"),
            port,
        )?;
        Ok(Self { server, port, dir })
    }

    /// Runs `ab -n requests -c 4` against the file; fails unless every request got the file.
    pub fn ab(&mut self, tools: &Tools, cgroup: &BenchCgroup, requests: usize) -> Result<Ab> {
        let url = format!("http://127.0.0.1:{}/small.html", self.port);
        let (status, output) = server::run_client(
            Command::new(&tools.ab)
                .arg("-q")
                .args(["-n", &requests.to_string()])
                .args(["-c", &CONCURRENCY.to_string()])
                .arg(&url),
            cgroup,
            &self.dir.path().join("ab.out"),
            Duration::from_secs(120),
        )?;
        self.server.check_running()?;
        if !status.success() {
            bail!("ab exited with {status}:\n{output}");
        }
        let ab = Ab::parse(&output).with_context(|| format!("unexpected ab output:\n{output}"))?;
        if ab.complete != requests as u64 || ab.failed > 0 || ab.non_2xx > 0 {
            bail!(
                "ab: {} of {requests} requests complete, {} failed, {} not 2xx:\n{output}",
                ab.complete,
                ab.failed,
                ab.non_2xx
            );
        }
        Ok(ab)
    }

    pub fn stop(self) -> Result<()> {
        self.server.stop()
    }
}

/// What `ab` reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ab {
    pub complete: u64,
    pub failed: u64,
    pub non_2xx: u64,
    pub requests_per_second: f64,
}

impl Ab {
    fn parse(output: &str) -> Option<Self> {
        let field = |name: &str| {
            output.lines().find_map(|line| {
                line.strip_prefix(name)?
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            })
        };
        Some(Self {
            complete: field("Complete requests:")?.parse().ok()?,
            failed: field("Failed requests:")?.parse().ok()?,
            // ab prints this line only when there were some.
            non_2xx: field("Non-2xx responses:").map_or(Some(0), |n| n.parse().ok())?,
            requests_per_second: field("Requests per second:")?.parse().ok()?,
        })
    }
}

/// Requests per second of nginx serving the file to `ab`, after a warm-up of a fifth as many
/// requests; nginx is started for this measurement and stopped after it.
pub fn requests_per_second(tools: &Tools, cgroup: &BenchCgroup, requests: usize) -> Result<f64> {
    let mut nginx = Nginx::start(tools, cgroup)?;
    nginx.ab(tools, cgroup, (requests / 5).max(1))?;
    let rate = nginx.ab(tools, cgroup, requests)?.requests_per_second;
    nginx.stop()?;
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Server Software:        nginx/1.22.1
Server Hostname:        127.0.0.1
Server Port:            18080

Document Path:          /small.html
Document Length:        512 bytes

Concurrency Level:      4
Time taken for tests:   0.348 seconds
Complete requests:      10000
Failed requests:        0
Total transferred:      7480000 bytes
HTML transferred:       5120000 bytes
Requests per second:    28746.70 [#/sec] (mean)
Time per request:       0.139 [ms] (mean)
";

    #[test]
    fn reads_the_counts_and_the_rate() {
        let ab = Ab::parse(OUTPUT).unwrap();
        assert_eq!(ab.complete, 10_000);
        assert_eq!(ab.failed, 0);
        assert_eq!(ab.non_2xx, 0);
        assert!((ab.requests_per_second - 28_746.70).abs() < 1e-9);
    }

    #[test]
    fn counts_non_2xx_responses_and_refuses_a_cut_output() {
        let with_errors = format!("{OUTPUT}Non-2xx responses:      12\n");
        assert_eq!(Ab::parse(&with_errors).unwrap().non_2xx, 12);
        assert!(Ab::parse("Complete requests:      10\n").is_none());
    }

    #[test]
    fn the_config_keeps_every_path_in_its_directory() {
        let conf = config(Path::new("/tmp/x"), 4242);
        assert!(conf.contains("listen 127.0.0.1:4242;"));
        assert!(conf.contains("daemon off;"));
        for line in conf.lines().filter(|l| l.contains(" /")) {
            assert!(line.contains("/tmp/x"), "{line}");
        }
    }
}
