//! The `sockstatsd` command line: its clap definitions, shared by the binary and by the man
//! page ([`crate::man`]), so that both always say the same.
use std::{path::PathBuf, time::Duration};

use sockstats_common::{protocol::DEFAULT_SOCKET_PATH, DEFAULT_MAX_ACCOUNTS, DEFAULT_MAX_SOCKETS};

use crate::{daemon, otlp::endpoint::Endpoint};

const DAEMON_NOTES: &str = "\
Files:
  /etc/sockstats/sockstats.conf  billing day, metered interfaces, history retention (--config)
  /etc/sockstats/rules.conf      labeling rules read at start (--rules-file)
  /run/sockstats/sockstats.sock  the socket sockstats and the client library use (--socket)
  /var/lib/sockstats             labels, rules added by clients, interface names, the usage
                                 history history.sqlite (--state-dir)
  /sys/fs/bpf/sockstats          pinned maps and program links (--bpffs-dir)

Running it: `systemctl enable --now sockstatsd` as a service, or `sudo sockstatsd` by hand;
`sockstats status` says whether it answers and its programs are attached.

Signals: SIGTERM and SIGINT stop the daemon cleanly; the programs stay attached and keep
counting while it is stopped (`sockstatsd --uninstall` detaches them).

Exit status: 0 when stopped by a signal or after --uninstall, 1 on any error (logged).";

/// Accounts the bytes every TCP/UDP socket on this host sends and receives, per label.
///
/// Loads eBPF programs that count payload bytes per socket, pins them so counting continues
/// while the daemon is down, and answers `sockstats` (and the client library) on a Unix socket.
/// Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) and Linux 5.10+ with BTF.
#[derive(Debug, clap::Parser)]
#[command(name = "sockstatsd", version, after_long_help = DAEMON_NOTES)]
#[expect(
    clippy::doc_markdown,
    reason = "doc comments are the plain-text --help"
)]
pub struct Args {
    /// Unix socket to serve clients on.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET_PATH)]
    pub socket: PathBuf,
    /// Permissions of the socket file, in octal. Anyone who can connect can label the sockets
    /// they hold and read all stats.
    #[arg(long, value_name = "MODE", default_value = "0666", value_parser = parse_mode)]
    pub socket_mode: u32,
    /// Group of the socket file (a name or a number), set with the mode before `listen`: with
    /// --socket-mode 0660 only root and that group may connect.
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    pub socket_group: Option<u32>,
    /// Directory on a BPF file system for pinned maps and links (bpffs at /sys/fs/bpf is
    /// mounted if needed).
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/sockstats")]
    pub bpffs_dir: PathBuf,
    /// Directory for persistent state (the label registry).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/sockstats")]
    pub state_dir: PathBuf,
    /// cgroup v2 directory whose subtree is accounted [default: the whole host, i.e. the
    /// cgroup2 mount found in /proc/self/mountinfo].
    #[arg(long, value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
    /// Which hooks count payload bytes: `auto` (the sock_send_length/sock_recv_length
    /// tracepoints where the kernel has them, else fexit on tcp_sendmsg, udp_sendmsg, ...),
    /// `tp_btf` or `fexit` (only that set, or fail).
    #[arg(long, value_name = "SET", default_value = "auto", value_parser = ["auto", "tp_btf", "fexit"])]
    pub payload_hooks: String,
    /// Serve Prometheus metrics (text format) at http://ADDR/metrics, e.g. 127.0.0.1:9464.
    /// Off by default; anyone who can reach ADDR can read every label's totals.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Push the counters the metrics endpoint shows as OTLP metrics (HTTP/protobuf, cumulative
    /// sums) to this collector every --otlp-interval: its full URL
    /// (http://127.0.0.1:4318/v1/metrics), or a base URL without a path, to which /v1/metrics
    /// is appended. http:// only (https is not supported yet). Off by default.
    #[arg(long, value_name = "URL", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<Endpoint>,
    /// Time between two OTLP exports, like 60s, 5m or 1m30s.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval)]
    pub otlp_interval: Duration,
    /// Every --stats-log-interval, append one JSON line of the per-label payload bytes moved
    /// since the previous line (labels that changed only) to this file. Off by default.
    #[arg(long, value_name = "FILE")]
    pub stats_log: Option<PathBuf>,
    /// Seconds between stats log lines.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_log_interval: u64,
    /// Rotate the stats log before it grows past this many bytes (to FILE.1, FILE.2, ...).
    #[arg(long, value_name = "BYTES", default_value_t = 10 * 1024 * 1024)]
    pub stats_log_max_bytes: u64,
    /// Rotated stats log files kept.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub stats_log_keep: usize,
    /// Seconds between recordings of the usage history (history.sqlite in --state-dir; see
    /// `sockstats history`). Bytes moved since the last recording are in no bucket yet.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::history::DEFAULT_INTERVAL_SECONDS, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub history_interval: u64,
    /// Let `get --validation` cover closed TCP sockets too: a kernel program on every TCP
    /// state change adds each socket's final tcp_info counters to its label when it reaches
    /// TCP_CLOSE. Off by default, and then that program is not attached at all (it would run
    /// about ten times per TCP connection). Without it, validation covers live TCP sockets.
    /// Ignored, with a warning, where socket states are kept by cookie (before 5.11, or on a
    /// kernel that refuses socket-storage iterators; `sockstats status` says which).
    #[arg(long)]
    pub validate_closed: bool,
    /// The config file, read at start: `billing-day N`, `metered GLOB…`, `retention
    /// 5min|hour|day|month DURATION|forever`, `quota …`, `quota-command PATH`, `network NAME
    /// CIDR…`, `price DEST tx|rx AMOUNT`, `currency SYMBOL` (the shipped
    /// /etc/sockstats/sockstats.conf documents each). The default file may be missing (then everything is the default); a
    /// file named here must exist. A line it cannot take stops the daemon, naming the line.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Labeling rules read at start, one per line: `uid <N> <label>`, `user <name> <label>`,
    /// `cgroup <path below the cgroup2 mount> <label>`, `unit <systemd unit> <label>` or
    /// `container <name or id> <label>`; `#` starts a comment. The default file
    /// may be missing; a file named here must exist.
    #[arg(long, value_name = "FILE")]
    pub rules_file: Option<PathBuf>,
    /// Directory below which container runtimes keep the metadata `get --by container` and
    /// container rules take names from: var/lib/docker (Docker), var/lib/containers/storage
    /// (Podman, CRI-O), run/containers/storage (CRI-O), run/containerd (containerd). Read only.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub container_metadata_root: PathBuf,
    /// Most clients served at once.
    #[arg(long, value_name = "N", default_value_t = daemon::server::DEFAULT_MAX_CLIENTS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_clients: u64,
    /// Most connections one non-root uid may hold at once.
    #[arg(long, value_name = "N", default_value_t = daemon::server::DEFAULT_MAX_CLIENTS_PER_UID, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_clients_per_uid: u64,
    /// Seconds a started request line may take to arrive, and a reply to be read, before the
    /// connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// Most labels one non-root uid may make (labels that exist can be used by anyone).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_labels_per_uid: usize,
    /// On kernels before 5.11 only (where socket states are kept in a hash by cookie): live
    /// sockets tracked at once. Sockets beyond it are counted in the overflow bucket. Changing
    /// it needs fresh maps (`--uninstall` first). Newer kernels keep each socket's state with
    /// the socket, without a limit of their own.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SOCKETS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sockets: u32,
    /// Accounts the kernel keeps running totals in: one per (label, interface) pair that ever
    /// moved bytes (id 0 is never used, so N-1 pairs). Bytes of pairs beyond it are counted in
    /// the overflow bucket. Each costs 48 bytes per CPU. Changing it needs fresh maps
    /// (`--uninstall` first).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ACCOUNTS, value_parser = clap::value_parser!(u32).range(2..))]
    pub max_accounts: u32,
    /// Detach the programs and delete every pin under --bpffs-dir (the kernel-side totals go
    /// with them), then exit.
    #[arg(long)]
    pub uninstall: bool,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode like 0660"))
}

fn parse_group(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(format!("no group named {text:?}")),
    }
}

fn parse_otlp_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text).map_err(|error| error.to_string())
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration like 60s, 5m or 1m30s: {error}"))?;
    if interval < Duration::from_secs(1) {
        return Err(format!(
            "{text:?} is shorter than the shortest interval, 1s"
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn otlp_flags_parse_and_bad_ones_say_why() {
        let args = Args::try_parse_from(["sockstatsd"]).unwrap();
        assert_eq!(args.otlp_endpoint, None);
        assert_eq!(args.otlp_interval, Duration::from_secs(60));
        let args = Args::try_parse_from([
            "sockstatsd",
            "--otlp-endpoint",
            "http://127.0.0.1:4318",
            "--otlp-interval",
            "1m30s",
        ])
        .unwrap();
        assert_eq!(
            args.otlp_endpoint.unwrap().to_string(),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(args.otlp_interval, Duration::from_secs(90));
        for (flag, value, says) in [
            (
                "--otlp-endpoint",
                "https://c:4318",
                "https is not supported yet",
            ),
            ("--otlp-endpoint", "c:4318", "not a URL"),
            ("--otlp-interval", "soon", "is not a duration"),
            (
                "--otlp-interval",
                "500ms",
                "shorter than the shortest interval, 1s",
            ),
        ] {
            let error = Args::try_parse_from(["sockstatsd", flag, value]).unwrap_err();
            let text = error.to_string();
            let first = text.lines().next().unwrap();
            assert!(
                first.starts_with("error: invalid value") && first.contains(says),
                "{text}"
            );
        }
    }
}
