//! The `sockstats` command line: its clap definitions, shared by the binary and by the man
//! pages ([`crate::man`]), so that both always say the same.
use std::{ffi::OsString, path::PathBuf};

use clap::{Args as ClapArgs, Parser, Subcommand};
use sockstats_common::protocol::{Grouping, HistoryBy, Period, RuleSelector};

const EXAMPLES: &str = "\
Examples:
  sockstats get                      bytes per label, largest first
  sockstats get --by uid             bytes per user, no labeling needed
  sockstats get --interfaces --wire  per interface, with IP-layer bytes and packets
  sockstats get --destinations --cost  per destination, with the config's prices
  sockstats get --peers --top 5      the remote endpoints each label talks to most
  sockstats watch                    live rates, like top
  sockstats history --period day     bytes per label per day, kept across restarts
  sockstats top --since 7d --by uid  who used the most in the last week
  sudo sockstats run --label backup -- rsync -a /data host:/backup
  sudo sockstats rules add --cgroup /system.slice/nginx.service --label web
  sockstats completions bash > /etc/bash_completion.d/sockstats

Environment:
  SOCKSTATS_SOCKET  the daemon's socket (default /run/sockstats/sockstats.sock)
  NO_COLOR          no bold headers even on a terminal

Exit status: 0 on success, 1 on any error (one line on stderr saying what to do);
`status` exits 1 when the programs are not attached; `run` exits with the command's status.";

/// Per-label network bytes of every TCP and UDP socket on this host.
///
/// Which part of your software spends the network: per-label (and per-user, per-cgroup,
/// per-process) bytes of this host's TCP and UDP sockets, counted exactly in the kernel by
/// sockstatsd.
#[derive(Debug, Parser)]
#[command(name = "sockstats", version, after_long_help = EXAMPLES)]
#[expect(
    clippy::doc_markdown,
    reason = "doc comments are the plain-text --help"
)]
pub struct Args {
    /// The daemon's socket [default: $SOCKSTATS_SOCKET, else /run/sockstats/sockstats.sock].
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::doc_markdown,
    reason = "doc comments are the plain-text --help"
)]
pub enum Command {
    /// Payload bytes sent (tx) and received (rx) per label, since the daemon's state was made.
    ///
    /// Payload is what applications passed to send and got from recv, exactly; sockets nobody
    /// labeled count as "unlabeled". Rows are sorted by total bytes, largest first.
    Get {
        /// Print JSON: {"stats": {"<label>": {"tx_bytes": N, "rx_bytes": N}}, "current_interface": …}.
        #[arg(long)]
        json: bool,
        /// Exact byte counts instead of human units.
        #[arg(long)]
        bytes: bool,
        /// Group by something other than labels: uid (user), cgroup (path below the cgroup2
        /// mount), process ("pid (command)"), unit (systemd unit, like nginx.service) or
        /// container (its name from the runtime, namespace/pod/container for Kubernetes, else
        /// its short id). uid, cgroup, unit and container cover live and closed sockets;
        /// process covers live sockets, closed ones are one row "(closed sockets)". With
        /// --json: {"by": …, "stats": {"<group>": {"tx_bytes", "rx_bytes", "live_sockets"}}, "covers": …}.
        #[arg(long, value_name = "GROUPING", value_enum, conflicts_with_all = ["interfaces", "validation"])]
        by: Option<GroupingArg>,
        /// Split each label's bytes by the interface its packets really used. With --json:
        /// {"stats": {"<label>": {"tx_bytes_by_interface": {"<iface>": N}, "rx_bytes_by_interface": {…}}},
        /// "interfaces": […], "wire": {…}}. Interfaces of other network namespaces are named
        /// <name>/<namespace>.
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
        #[arg(long, requires = "interfaces", conflicts_with = "destinations")]
        wire: bool,
        /// Split each label's (or, with --by, each group's) bytes by the destination of the
        /// remote address: host (loopback), private (RFC 1918, CGNAT, link-local, ULA),
        /// internet (the rest), or a named network of the daemon's config (`network NAME
        /// CIDR…`). With --interfaces: per interface too. With --json:
        /// {"stats": {"<label>": {"tx_bytes_by_destination": {"<destination>": N},
        /// "rx_bytes_by_destination": {…}}}, "destinations": […]}.
        #[arg(long, conflicts_with = "validation")]
        destinations: bool,
        /// With --destinations: add the estimated cost of each row, label and in all, from the
        /// config's `price DEST tx|rx AMOUNT` lines (per GiB) and its `currency`.
        #[arg(long, requires = "destinations", conflicts_with = "by")]
        cost: bool,
        /// Per label, the remote addresses and ports with the most payload (live sockets and
        /// those closed since the daemon started), the rest in one "(other)" row, and rows for
        /// what no single peer stands for. With --json: {"stats": {"<label>": {"peers":
        /// [{"peer", "tx_bytes", "rx_bytes", "live_sockets", "closed_sockets"}], "other": …,
        /// "several_peers": …, "unknown_peer": …, "not_attributed": …}}, "top": N, "covers": …}.
        #[arg(long, conflicts_with_all = ["by", "interfaces", "validation", "destinations"])]
        peers: bool,
        /// With --peers: only this label.
        #[arg(long, value_name = "LABEL", requires = "peers")]
        label: Option<String>,
        /// With --peers: how many peers per label (1–1000).
        #[arg(long, value_name = "N", requires = "peers", default_value_t = 10)]
        top: u32,
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
    /// Recorded usage over time: a table per bucket of 5 minutes, hours, days or billing
    /// months, rows largest first with a bar each (r: received, t: sent), from the daemon's
    /// history (docs/history.md). `history reset` forgets it (root).
    ///
    /// Without --since: the last 2 hours of 5-minute buckets, 24 hours of hours, 30 days, or
    /// 12 months. A bucket is shown when it starts in [--since, --until).
    #[command(args_conflicts_with_subcommands = true)]
    History {
        #[command(subcommand)]
        action: Option<HistoryAction>,
        #[command(flatten)]
        window: WindowArgs,
        /// Bucket length: 5min, hour, day, or month (from the config file's billing-day).
        #[arg(long, value_name = "PERIOD", default_value = "hour", value_parser = parse_period)]
        period: Period,
        /// Print JSON: {"period": …, "buckets": [{"start": "<RFC 3339>", "end": …, "stats":
        /// {"<key>": {"tx_bytes": N, "rx_bytes": N}}}]}.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV: start,end,<key>,tx_bytes,rx_bytes, a line per bucket and key.
        #[arg(long)]
        csv: bool,
        /// Also draw the buckets as a stacked area chart over time into FILE (.svg or .png;
        /// the 8 largest keys, the rest as "(others)"). Needs a TrueType font (Debian:
        /// fonts-dejavu-core).
        #[arg(long, value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// The labels (or --by keys) that moved the most bytes over a window of the recorded
    /// history, largest first.
    ///
    /// Summed over 5-minute buckets for windows up to 2 days, hours up to 90 days, days
    /// beyond: the window starts at the first whole bucket after --since.
    Top {
        #[command(flatten)]
        window: WindowArgs,
        /// Print JSON: {"since": …, "until": …, "by": …, "stats": {"<key>": {"tx_bytes", "rx_bytes"}}}.
        #[arg(long)]
        json: bool,
    },
    /// Each quota of the daemon's config file (its `quota` lines) with its use of the current
    /// hour, day or billing month, from the recorded history: used, limit, state (ok, warn or
    /// over) and when a threshold last fired. Nothing is ever blocked: quotas only watch.
    Quotas {
        /// Print JSON: {"quotas": [{"quota", "label", "interface", "period", "period_start",
        /// "period_end", "used_bytes", "limit_bytes", "used_ratio", "state", "last_fired", …}],
        /// "recorded_until": …}.
        #[arg(long)]
        json: bool,
        /// Exact byte counts instead of human units.
        #[arg(long)]
        bytes: bool,
    },
    /// Run a command with every socket it (and its children) make labeled LABEL (root).
    ///
    /// The command runs in a cgroup of its own with a temporary rule; its exit status is
    /// passed through (128+N when killed by signal N, 127 when it is not found). Processes it
    /// leaves behind are killed when it exits, and the cgroup is removed. It runs as root
    /// unless --user says otherwise.
    Run {
        /// The label for the command's sockets.
        #[arg(long, short)]
        label: String,
        /// Run the command as this user (a name or a uid) with its groups, not as root.
        #[arg(long, short, value_name = "USER")]
        user: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(required = true, last = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// The labeling rules in force; `rules add` and `rules remove` change them (root).
    ///
    /// A rule labels every socket made from then on by a uid, or by a task in a cgroup or
    /// below it, in the kernel, when the socket is made. The deepest cgroup rule wins over a
    /// uid rule; a label set by a program over the socket wins over both. Rules added here
    /// are kept across daemon restarts; rules from the rules file (sockstatsd --rules-file)
    /// can only be changed in the file.
    Rules {
        #[command(subcommand)]
        action: Option<RulesAction>,
        /// Print JSON: {"rules": [{"uid"|"cgroup": …, "label", "source", "active"}]}.
        #[arg(long, global = true)]
        json: bool,
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Which keys and which window of the history.
#[derive(Debug, ClapArgs)]
pub struct WindowArgs {
    /// Only this label (repeat for more).
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Only this interface (repeat for more).
    #[arg(long = "interface", value_name = "INTERFACE")]
    pub interfaces: Vec<String>,
    /// Only interfaces the config file marks metered (metered globs; rmnet*, ww*, pdp* unless
    /// set).
    #[arg(long)]
    pub metered: bool,
    /// Only bytes to and from this destination: host, private, internet, a network of the
    /// config file, :unknown (repeat for more).
    #[arg(long = "destination", value_name = "DESTINATION")]
    pub destinations: Vec<String>,
    /// Keys of the rows: label, interface, uid (user names), cgroup (paths) or destination
    /// (classes and named networks). uid and cgroup cannot be filtered by label or interface
    /// (the kernel keeps owners' bytes without them).
    #[arg(long, value_name = "KEY", value_enum, default_value = "label")]
    pub by: HistoryByArg,
    /// From this time: a duration back from now (24h, 7d), a date (2026-12-01, UTC) or a UTC
    /// time (2026-12-01T12:00:00Z) [top's default: 24h].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Until this time (same forms) [default: now].
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Exact byte counts instead of human units.
    #[arg(long)]
    pub bytes: bool,
}

#[derive(Debug, Subcommand)]
pub enum HistoryAction {
    /// Forget the recorded usage (root), like the reset of a data plan: of one label, or all.
    Reset {
        /// Forget only this label's history (every interface).
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HistoryByArg {
    Label,
    Interface,
    Uid,
    Cgroup,
    Destination,
}

impl From<HistoryByArg> for HistoryBy {
    fn from(arg: HistoryByArg) -> Self {
        match arg {
            HistoryByArg::Label => HistoryBy::Label,
            HistoryByArg::Interface => HistoryBy::Interface,
            HistoryByArg::Uid => HistoryBy::Uid,
            HistoryByArg::Cgroup => HistoryBy::Cgroup,
            HistoryByArg::Destination => HistoryBy::Destination,
        }
    }
}

fn parse_period(text: &str) -> Result<Period, String> {
    Period::from_name(text)
        .ok_or_else(|| format!("{text:?} is not a period: 5min, hour, day or month"))
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GroupingArg {
    Label,
    Uid,
    Cgroup,
    Process,
    Unit,
    Container,
}

impl From<GroupingArg> for Grouping {
    fn from(arg: GroupingArg) -> Self {
        match arg {
            GroupingArg::Label => Grouping::Label,
            GroupingArg::Uid => Grouping::Uid,
            GroupingArg::Cgroup => Grouping::Cgroup,
            GroupingArg::Process => Grouping::Process,
            GroupingArg::Unit => Grouping::Unit,
            GroupingArg::Container => Grouping::Container,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Label every socket made from now on by a uid/user, in a cgroup subtree, a systemd unit
    /// or a container. A unit or container must be running; a rule for it follows its
    /// restarts (put one for a unit or container that is not running yet in the rules file).
    Add {
        #[command(flatten)]
        selector: SelectorArgs,
        /// The label.
        #[arg(long, short)]
        label: String,
    },
    /// Remove the rule of a uid/user, cgroup, unit or container.
    Remove {
        #[command(flatten)]
        selector: SelectorArgs,
    },
}

#[derive(Debug, ClapArgs)]
#[group(required = true, multiple = false)]
pub struct SelectorArgs {
    /// Sockets made by tasks running as this uid.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Sockets made by tasks running as this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Sockets made by tasks in this cgroup or below it: a path below the cgroup2 mount,
    /// like /system.slice/nginx.service.
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Sockets made by tasks in this systemd unit, like nginx.service or session-3.scope.
    #[arg(long)]
    pub unit: Option<String>,
    /// Sockets made by tasks in this container: its name as `get --by container` shows it
    /// (namespace/pod/container for Kubernetes) or its id (12 hex digits or more).
    #[arg(long)]
    pub container: Option<String>,
}

impl SelectorArgs {
    /// The selector of the protocol's rule requests.
    #[must_use]
    pub fn selector(&self) -> RuleSelector {
        RuleSelector {
            uid: self.uid,
            user: self.user.clone(),
            cgroup: self.cgroup.clone(),
            unit: self.unit.clone(),
            container: self.container.clone(),
        }
    }
}

fn parse_interval(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| (0.05..=3600.0).contains(seconds))
        .ok_or_else(|| format!("{text:?} is not a number of seconds between 0.05 and 3600"))
}
