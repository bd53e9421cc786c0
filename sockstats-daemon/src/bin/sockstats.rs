//! `sockstats`: query the sockstats daemon. See `sockstats --help`.
use std::{io::Write as _, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use serde::Serialize;
use sockstats_common::client::{default_socket_path, Client, ClientError};
use sockstats_daemon::cli::{format, watch};

/// Per-label network bytes of this host's sockets, from sockstatsd.
#[derive(Debug, Parser)]
#[expect(
    clippy::doc_markdown,
    reason = "doc comments are the plain-text --help"
)]
#[command(version, about, long_about = None)]
struct Args {
    /// The daemon's socket [default: $SOCKSTATS_SOCKET, else /run/sockstats/sockstats.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::doc_markdown,
    reason = "doc comments are the plain-text --help"
)]
enum Command {
    /// Payload bytes sent (tx) and received (rx) per label, since the daemon's state was created.
    Get {
        /// Print JSON: {"stats": {"<label>": {"tx_bytes": N, "rx_bytes": N}}, "current_interface": …}.
        #[arg(long)]
        json: bool,
        /// Exact byte counts instead of human units.
        #[arg(long)]
        bytes: bool,
        /// Split each label's bytes by the interface its packets really used. With --json:
        /// {"stats": {"<label>": {"tx_bytes_by_interface": {"<iface>": N}, "rx_bytes_by_interface": {…}}},
        /// "interfaces": […], "wire": {…}}. Interfaces of other network namespaces are named
        /// <name>@<namespace>.
        #[arg(long)]
        interfaces: bool,
        /// Per label, bytes from the kernel's own TCP counters (tcp_info bytes_acked and
        /// bytes_received of live and closed TCP sockets) instead, to check the payload counts
        /// against. Covers TCP only; the kernel counts SYN and FIN as a byte each. Costs more
        /// than plain get.
        #[arg(long, conflicts_with = "interfaces")]
        validation: bool,
        /// With --interfaces: also IP-layer (wire) bytes and packets: headers, ACKs and
        /// retransmits included, what metered links bill.
        #[arg(long, requires = "interfaces")]
        wire: bool,
    },
    /// A live view of per-label rates and totals, like top: redrawn every interval on a
    /// terminal (q, Esc or Ctrl-C to quit); plain blocks of lines when stdout is not a terminal.
    Watch {
        /// Seconds between refreshes.
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_interval)]
        interval: f64,
        /// One row per label and interface.
        #[arg(long)]
        interfaces: bool,
        /// Exact byte counts instead of human units.
        #[arg(long)]
        bytes: bool,
        /// Stop after N refreshes.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Registered labels and their stable ids.
    Labels {
        #[arg(long)]
        json: bool,
    },
    /// Everything a maintainer needs on one screen: kernel, hooks and program ids, per-program
    /// run counts and average ns (when kernel.bpf_stats_enabled=1), map fill, failure
    /// counters, live sockets, labels, uptime, paths.
    Debug {
        #[arg(long)]
        json: bool,
    },
    /// Whether the daemon answers and its programs are attached (exit 0 only then).
    Status {
        #[arg(long)]
        json: bool,
    },
}

fn parse_interval(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| (0.05..=3600.0).contains(seconds))
        .ok_or_else(|| format!("{text:?} is not a number of seconds between 0.05 and 3600"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let socket = args.socket.clone().unwrap_or_else(default_socket_path);
    match run(&args.command, &socket) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sockstats: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_json<T: Serialize>(value: &T) {
    let mut text = serde_json::to_string_pretty(value).expect("replies serialize");
    text.push('\n');
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Prints `reply` as JSON with `json`, else as the text `human` makes of it.
fn show<T: Serialize>(json: bool, reply: &T, human: impl FnOnce(&T) -> String) {
    if json {
        print_json(reply);
    } else {
        print(&human(reply));
    }
}

fn print(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn run(command: &Command, socket: &PathBuf) -> Result<ExitCode, ClientError> {
    let mut client = Client::connect(socket)?;
    match command {
        Command::Get {
            json,
            bytes,
            validation: true,
            ..
        } => {
            let reply = client.get_validation()?;
            show(*json, &reply, |reply| {
                format::validation_table(reply, *bytes)
            });
        }
        Command::Get {
            json,
            bytes,
            interfaces: true,
            wire,
            ..
        } => {
            let reply = client.get_interfaces()?;
            show(*json, &reply, |reply| {
                format::interfaces_table(reply, *bytes, *wire)
            });
        }
        Command::Get {
            json,
            bytes,
            interfaces: false,
            ..
        } => {
            let reply = client.get()?;
            show(*json, &reply, |reply| format::get_table(reply, *bytes));
        }
        Command::Labels { json } => {
            let reply = client.labels()?;
            show(*json, &reply, format::labels_table);
        }
        Command::Watch {
            interval,
            interfaces,
            bytes,
            count,
        } => {
            let options = watch::WatchOptions {
                interval: std::time::Duration::from_secs_f64(*interval),
                interfaces: *interfaces,
                exact: *bytes,
                count: *count,
            };
            watch::watch(&mut client, options)?;
        }
        Command::Debug { json } => {
            let reply = client.debug_info()?;
            show(*json, &reply, format::debug_text);
        }
        Command::Status { json } => {
            let reply = client.status()?;
            show(*json, &reply, format::status_text);
            if !reply.attached {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
