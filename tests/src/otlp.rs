//! A private OTLP/HTTP metrics receiver (`tools/otlp_receiver.py`, which decodes with the
//! `opentelemetry-proto` package from the Python package index) on a loopback port, and the points it received.
use std::{
    collections::BTreeMap,
    fs,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The receiver's script.
#[must_use]
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/otlp_receiver.py")
}

/// A receiver on 127.0.0.1:`port`, killed on drop (also when the test fails).
pub struct Receiver {
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl Receiver {
    /// Starts the receiver on `port`, writing its points under `dir`, and waits until it
    /// accepts connections.
    ///
    /// # Panics
    /// When python3 or `opentelemetry-proto` is missing (`cargo xtask test` installs it), or
    /// it does not listen within 20 s.
    #[must_use]
    pub fn start(port: u16, dir: &Path) -> Self {
        Self::answering(port, dir, 200)
    }

    /// As [`Receiver::start`], answering every export with `status` (and recording none
    /// unless it is 200).
    #[must_use]
    pub fn answering(port: u16, dir: &Path, status: u16) -> Self {
        let out = dir.join(format!("otlp-{port}.jsonl"));
        let log = dir.join(format!("otlp-{port}.log"));
        let child = Command::new("python3")
            .arg(script())
            .arg(port.to_string())
            .arg(&out)
            .arg(status.to_string())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("receiver log"))
            .spawn()
            .expect("start python3 with the OTLP receiver");
        let mut receiver = Self { child, out, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = receiver.child.try_wait() {
                panic!(
                    "the OTLP receiver exited with {status} (is PyPI's opentelemetry-proto installed? `cargo xtask test` installs it):\n{}",
                    receiver.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the OTLP receiver did not listen:\n{}",
                receiver.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        receiver
    }

    /// Its log (one line per request, errors).
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every point received, by request number (1, 2, … in the order they came).
    #[must_use]
    pub fn requests(&self) -> BTreeMap<u64, Vec<Value>> {
        let mut requests: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
        for line in fs::read_to_string(&self.out).unwrap_or_default().lines() {
            let point: Value = serde_json::from_str(line).expect("a JSON line");
            let number = point["request"].as_u64().expect("a request number");
            requests.entry(number).or_default().push(point);
        }
        requests
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the one point of `metric` in `points` whose attributes include `attributes`.
///
/// # Panics
/// When there is not exactly one.
#[must_use]
pub fn value(points: &[Value], metric: &str, attributes: &[(&str, &str)]) -> i64 {
    let found: Vec<&Value> = points
        .iter()
        .filter(|p| p["metric"] == metric)
        .filter(|p| attributes.iter().all(|(k, v)| p["attributes"][k] == *v))
        .collect();
    assert_eq!(found.len(), 1, "{metric} {attributes:?}: {found:?}");
    found[0]["value"].as_i64().expect("an integer value")
}
