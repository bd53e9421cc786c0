//! A private Prometheus (Debian's `prometheus`) scraping one test daemon's metrics endpoint,
//! and its HTTP API, for the tests of the Grafana dashboard.
use std::{
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::http::free_loopback_port;

/// Where Debian's `prometheus` package puts the server (`cargo xtask test` installs it).
pub const BINARY: &str = "/usr/bin/prometheus";

/// A Prometheus server on a free loopback port, its data in a temporary directory; killed on
/// drop (also when the test fails).
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second, and waits until it
    /// answers.
    ///
    /// # Panics
    /// When Prometheus is not installed or does not start within 30 s.
    #[must_use]
    pub fn scraping(target: &str) -> Self {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install Debian's prometheus (`cargo xtask test` does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("sockstats-prometheus-")
            .tempdir()
            .expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: sockstats\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_loopback_port();
        let log = fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let prometheus = Self { child, port, dir };
        prometheus.wait_for(Duration::from_secs(30), "its API to answer", |p| {
            p.get("/-/ready").is_some_and(|(status, _)| status == 200)
        });
        prometheus
    }

    /// Polls `ready` every 200 ms until it holds.
    ///
    /// # Panics
    /// After `timeout`, with Prometheus' log.
    pub fn wait_for(&self, timeout: Duration, what: &str, ready: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while !ready(self) {
            assert!(
                start.elapsed() < timeout,
                "Prometheus did not show {what} within {timeout:?}; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Prometheus' own log.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` (already encoded); the status code and body, or `None` if nothing answered.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Some((status, body))
    }

    /// An API call: `path` with its query parameters (encoded here); the reply's `data`.
    ///
    /// # Panics
    /// When the API does not answer `"status": "success"`.
    #[must_use]
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let query: Vec<String> = params
            .iter()
            .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
            .collect();
        let (status, body) = self
            .get(&format!("{path}?{}", query.join("&")))
            .expect("Prometheus answers");
        let reply: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} {params:?}: not JSON ({e}): {body}"));
        assert!(
            status == 200 && reply["status"] == "success",
            "{path} {params:?}: HTTP {status}: {body}"
        );
        reply["data"].clone()
    }

    /// The series an instant `PromQL` query returns now.
    #[must_use]
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", promql)]);
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_promql_and_reads_chunked_bodies() {
        assert_eq!(
            encode(r#"sum by (label) (x{a=~".*"}[1m])"#),
            "sum%20by%20%28label%29%20%28x%7Ba%3D~%22.%2A%22%7D%5B1m%5D%29"
        );
        assert_eq!(dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia");
    }
}
