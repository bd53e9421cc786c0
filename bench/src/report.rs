//! The bench's results: the machine, the numbers, the targets, as a table and as JSON.
use std::{fs, process::Command};

use serde::Serialize;

use crate::{
    connection_cost::ConnectionCost,
    daemon_load::{Churn, GetLatency, Idle},
    destinations::{self, DestinationResults},
    program_cost::ProgramCosts,
    stats::Spread,
    throughput::ThroughputResults,
};

#[derive(Debug, Serialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub started_utc: String,
    /// `/proc/loadavg` before and after: the machine may be shared.
    pub loadavg_before: String,
    pub loadavg_after: String,
}

impl Machine {
    #[must_use]
    pub fn read() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self {
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            started_utc: Command::new("date")
                .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default(),
            loadavg_before: loadavg(),
            loadavg_after: String::new(),
        }
    }
}

#[must_use]
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub rounds: usize,
    pub seconds_per_workload: f64,
    pub socket_counts: Vec<usize>,
    pub churn_connections: usize,
    /// `ab` requests per nginx measurement.
    pub ab_requests: usize,
}

#[derive(Debug, Serialize)]
pub struct DaemonResults {
    pub idle: Idle,
    pub churn: Option<Churn>,
    pub idle_after_load: Option<Idle>,
    /// Highest resident memory over the whole run (`VmHWM`).
    pub peak_rss_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub wanted: String,
    pub measured: String,
    /// `None` when this run did not measure it (`--quick`, fewer socket counts).
    pub met: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub throughput: ThroughputResults,
    /// The sockstats programs' run time per connection (`tcp_connect`) and per request
    /// (`nginx_ab`), with sockstats attached in the throughput rounds.
    pub program_time_per_connection: Vec<ConnectionCost>,
    pub program_cost: ProgramCosts,
    /// What classifying destinations costs (`None` with `--no-destinations`).
    pub destinations: Option<DestinationResults>,
    pub get_latency: Vec<GetLatency>,
    pub daemon: DaemonResults,
    pub targets: Vec<Target>,
}

fn target(
    name: &str,
    wanted: &str,
    measured: Option<f64>,
    unit: &str,
    met: impl Fn(f64) -> bool,
) -> Target {
    Target {
        name: name.to_owned(),
        wanted: wanted.to_owned(),
        measured: measured.map_or_else(|| "not measured".to_owned(), |m| format!("{m:.3}{unit}")),
        met: measured.map(met),
    }
}

/// The throughput ratios the issue "Accounting at the kernel's floor" asks for: workload,
/// lowest ratio (with ÷ without sockstats).
const RATIO_TARGETS: [(&str, f64); 5] = [
    ("nginx_ab", 0.95),
    ("tcp_connect", 0.95),
    ("iperf3_1kib", 0.98),
    ("tcp_1kib", 0.97),
    ("udp_64b", 0.97),
];
/// Each send, receive and packet program, ns beyond an empty program of its type.
const HOT_PATH_NET_NS: f64 = 30.0;
/// `sockstats get --json` at 100,000 live sockets, ms.
const GET_AT_100K_MS: f64 = 5.0;
/// "Flat": `get` at the most live sockets measured, at most this many times `get` at the
/// fewest.
const GET_FLATNESS: f64 = 1.5;
const PEAK_RSS_MIB: f64 = 20.0;
/// Daemon CPU during the connection churn, percent of one CPU.
const CHURN_CPU_PERCENT: f64 = 2.0;

/// The targets against the medians.
#[must_use]
pub fn targets(report: &Report) -> Vec<Target> {
    let ratio = |name: &str| {
        report
            .throughput
            .workloads
            .iter()
            .find(|w| w.workload == name)
            .and_then(|w| w.sockstats_ratio.as_ref())
            .map(|s| s.median)
    };
    let mut targets: Vec<Target> = RATIO_TARGETS
        .iter()
        .map(|&(workload, lowest)| {
            target(
                &format!("{workload} ratio"),
                &format!(">= {lowest}"),
                ratio(workload),
                "",
                |r| r >= lowest,
            )
        })
        .collect();
    for cost in &report.program_time_per_connection {
        targets.push(target(
            &format!("sockstats program time per {} {}", cost.workload, cost.per),
            &format!("<= {:.0} ns", cost.target_ns),
            cost.total_ns.as_ref().map(|s| s.median),
            " ns",
            |ns| ns <= cost.target_ns,
        ));
    }
    for program in report.program_cost.sockstats.iter().filter(|p| p.hot_path) {
        targets.push(target(
            &format!(
                "{} beyond an empty {}",
                program.program,
                program.compared_with.as_deref().unwrap_or("program")
            ),
            &format!("<= {HOT_PATH_NET_NS:.0} ns"),
            program.net_ns.as_ref().map(|s| s.median),
            " ns",
            |ns| ns <= HOT_PATH_NET_NS,
        ));
    }
    let get_ms = |g: &GetLatency| g.cli_ms.as_ref().map(|s| s.median);
    let at_100k = report
        .get_latency
        .iter()
        .find(|g| g.live_sockets >= 100_000)
        .and_then(get_ms);
    targets.push(target(
        "sockstats get --json at 100,000 live sockets",
        &format!("<= {GET_AT_100K_MS:.0} ms"),
        at_100k,
        " ms",
        |ms| ms <= GET_AT_100K_MS,
    ));
    targets.push(target(
        &get_flatness_name(&report.get_latency),
        &format!("<= {GET_FLATNESS}"),
        get_flatness(&report.get_latency),
        "",
        |r| r <= GET_FLATNESS,
    ));
    targets.push(target(
        "daemon peak RSS over the run",
        &format!("< {PEAK_RSS_MIB:.0} MiB"),
        Some(report.daemon.peak_rss_mib),
        " MiB",
        |mib| mib < PEAK_RSS_MIB,
    ));
    targets.push(target(
        "daemon CPU during the connection churn",
        &format!("<= {CHURN_CPU_PERCENT:.0} % of a CPU"),
        report.daemon.churn.as_ref().map(|c| c.daemon_cpu_percent),
        " %",
        |percent| percent <= CHURN_CPU_PERCENT,
    ));
    targets
}

/// `get` at the most live sockets measured ÷ `get` at the fewest; `None` with fewer than two
/// socket counts.
fn get_flatness(latencies: &[GetLatency]) -> Option<f64> {
    let ms = |g: &GetLatency| g.cli_ms.as_ref().map(|s| s.median);
    let fewest = latencies.iter().min_by_key(|g| g.live_sockets)?;
    let most = latencies.iter().max_by_key(|g| g.live_sockets)?;
    if fewest.live_sockets == most.live_sockets {
        return None;
    }
    Some(ms(most)? / ms(fewest)?)
}

fn get_flatness_name(latencies: &[GetLatency]) -> String {
    let count = |g: Option<&GetLatency>| g.map_or(0, |g| g.live_sockets);
    format!(
        "get at {} ÷ get at {} live sockets",
        count(latencies.iter().max_by_key(|g| g.live_sockets)),
        count(latencies.iter().min_by_key(|g| g.live_sockets)),
    )
}

const MIB: f64 = 1.0 / (1024.0 * 1024.0);

/// Prints the report as tables.
pub fn print(report: &Report) {
    print_throughput(report);
    print_per_connection(report);
    print_programs(report);
    if let Some(results) = &report.destinations {
        println!();
        destinations::print(results);
    }
    print_daemon(report);
    print_targets(report);
}

fn print_throughput(report: &Report) {
    let m = &report.machine;
    println!(
        "\nsockstats bench — {} — {} ({} CPUs), Linux {}",
        m.started_utc, m.cpu_model, m.cpus, m.kernel
    );
    println!(
        "load average before: {}  after: {}",
        m.loadavg_before, m.loadavg_after
    );
    println!(
        "{} rounds × {:.1} s per workload; median [min–max] over rounds; ratios are per round, with/without\n",
        report.settings.rounds, report.settings.seconds_per_workload
    );
    println!(
        "{:<12} {:>26} {:>22} {:>22} {:>22}",
        "workload", "baseline", "sockstats ratio", "nethogs ratio", "unit"
    );
    for w in &report.throughput.workloads {
        let (scale, unit) = match w.unit {
            "bytes/s" => (MIB, "MiB/s"),
            "datagrams/s" => (1e-3, "k datagrams/s"),
            "requests/s" => (1e-3, "k requests/s"),
            _ => (1e-3, "k connections/s"),
        };
        println!(
            "{:<12} {:>26} {:>22} {:>22} {:>22}",
            w.workload,
            w.baseline
                .as_ref()
                .map_or_else(String::new, |s| s.show(scale, 0)),
            w.sockstats_ratio
                .as_ref()
                .map_or_else(String::new, |s| s.show(1.0, 3)),
            w.nethogs_ratio
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| s.show(1.0, 3)),
            unit
        );
    }
    for skipped in &report.throughput.skipped {
        println!("{:<12} skipped: {}", skipped.workload, skipped.reason);
    }
    if report
        .throughput
        .workloads
        .iter()
        .any(|w| w.workload == "nginx_ab")
    {
        println!(
            "nginx_ab: nginx serving a {}-byte file, `ab -n {} -c 4`, a new connection per request",
            crate::nginx::FILE_BYTES,
            report.settings.ab_requests
        );
    }
    if report
        .throughput
        .workloads
        .iter()
        .any(|w| w.workload.starts_with("iperf3"))
    {
        println!("iperf3_1kib: `iperf3 -l 1024`, the receiver's bits/s ÷ 8");
    }
    let cpu = &report.throughput.tool_cpu;
    println!(
        "tool CPU while the workloads ran (% of one CPU): sockstatsd {}, nethogs {}",
        cpu.sockstats_daemon_percent
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| s.show(1.0, 2)),
        cpu.nethogs_percent
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| s.show(1.0, 2)),
    );
    println!(
        "sockstats kernel programs' run time during the cost rounds (% of one CPU, stats overhead included): {}\n",
        report.program_cost.sockstats_cpu_percent.as_ref().map_or_else(|| "-".to_owned(), |s| s.show(1.0, 2)),
    );
}

fn print_per_connection(report: &Report) {
    let costs = &report.program_time_per_connection;
    if costs.is_empty() {
        return;
    }
    println!(
        "program time per connection: every sockstats program's run time (kernel.bpf_stats_enabled, \
         on only in a pass after each round's timed runs) / connections made, median [min–max]; \
         net = minus an empty program's ns per call"
    );
    println!(
        "{:<12} {:>10} {:>9} {:>26} {:>26} {:>12} {:>16}",
        "workload", "per", "made", "program time (ns)", "net (ns)", "target", "bytes accounted"
    );
    for c in costs {
        println!(
            "{:<12} {:>10} {:>9} {:>26} {:>26} {:>12} {:>16}",
            c.workload,
            c.per,
            c.units,
            show(c.total_ns.as_ref(), 0),
            show(c.net_total_ns.as_ref(), 0),
            format!("<= {:.0}", c.target_ns),
            c.accounted_bytes
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.0}", s.median)),
        );
    }
    print!("{:<20}", "  per program");
    for c in costs {
        print!(
            " {:>22} {:>14}",
            format!("{} ns/{}", c.workload, abbreviate(c.per)),
            format!("calls/{}", abbreviate(c.per))
        );
    }
    println!();
    let mut names: Vec<&str> = Vec::new();
    for p in costs.iter().flat_map(|c| &c.programs) {
        if !names.contains(&p.program.as_str()) {
            names.push(&p.program);
        }
    }
    for name in names {
        print!("  {name:<18}");
        for c in costs {
            let program = c.programs.iter().find(|p| p.program == name);
            print!(
                " {:>22} {:>14}",
                program.map_or_else(|| "-".to_owned(), |p| median(p.ns.as_ref(), 0)),
                program.map_or_else(|| "-".to_owned(), |p| median(p.calls.as_ref(), 2)),
            );
        }
        println!();
    }
    println!();
}

fn abbreviate(per: &str) -> &str {
    if per == "connection" {
        "conn"
    } else {
        "req"
    }
}

fn median(spread: Option<&Spread>, digits: usize) -> String {
    spread.map_or_else(|| "-".to_owned(), |s| format!("{:.digits$}", s.median))
}

fn show(spread: Option<&Spread>, digits: usize) -> String {
    spread.map_or_else(|| "-".to_owned(), |s| s.show(1.0, digits))
}

fn print_programs(report: &Report) {
    println!(
        "ns per invocation, median [min–max]; net = minus the empty program of the same type \
         (stats overhead); \"1 CPU\" = the workload pinned to one CPU"
    );
    println!(
        "{:<20} {:>9} {:>6} {:>22} {:>22} {:>22} {:>22}  vs",
        "program", "runs", "insns", "ns/run", "net", "ns/run 1 CPU", "net 1 CPU"
    );
    for p in &report.program_cost.sockstats {
        println!(
            "{:<20} {:>9} {:>6} {:>22} {:>22} {:>22} {:>22}  {}",
            p.program,
            p.runs,
            p.size
                .verified_insns
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            show(p.ns_per_run.as_ref(), 1),
            show(p.net_ns.as_ref(), 1),
            show(p.ns_per_run_one_cpu.as_ref(), 1),
            show(p.net_ns_one_cpu.as_ref(), 1),
            p.compared_with.as_deref().unwrap_or("-"),
        );
    }
    for e in &report.program_cost.empty {
        println!(
            "{:<20} {:>9} {:>6} {:>22} {:>22} {:>22} {:>22}  ({})",
            e.program,
            e.runs,
            2,
            show(e.ns_per_run.as_ref(), 1),
            "",
            show(e.ns_per_run_one_cpu.as_ref(), 1),
            "",
            e.hook
        );
    }
}

fn print_daemon(report: &Report) {
    println!(
        "\n{:>14} {:>28} {:>28} {:>16}",
        "live sockets", "sockstats get --json (ms)", "client get (ms)", "daemon RSS MiB"
    );
    for g in &report.get_latency {
        println!(
            "{:>14} {:>28} {:>28} {:>16.1}",
            g.live_sockets,
            g.cli_ms
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| s.show(1.0, 2)),
            g.client_ms
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| s.show(1.0, 2)),
            g.daemon_rss_mib
        );
    }
    let d = &report.daemon;
    println!(
        "\ndaemon idle: {:.1} MiB RSS, {:.3} CPU s in {:.0} s",
        d.idle.rss_mib, d.idle.cpu_seconds, d.idle.seconds
    );
    if let Some(c) = &d.churn {
        println!(
            "daemon during churn of {} TCP connections ({:.1} s, {:.0}/s): {:.2} CPU s ({:.1}% of one CPU), max RSS {:.1} MiB",
            c.connections, c.seconds, c.connections_per_second, c.daemon_cpu_seconds, c.daemon_cpu_percent, c.daemon_max_rss_mib
        );
    }
    if let Some(i) = &d.idle_after_load {
        println!(
            "daemon idle after all that: {:.1} MiB RSS, {:.3} CPU s in {:.0} s",
            i.rss_mib, i.cpu_seconds, i.seconds
        );
    }
    println!(
        "daemon peak RSS (VmHWM) over the run: {:.1} MiB\n",
        d.peak_rss_mib
    );
}

fn print_targets(report: &Report) {
    println!("{:<52} {:>10} {:>16}  met", "target", "wanted", "measured");
    for t in &report.targets {
        println!(
            "{:<52} {:>10} {:>16}  {}",
            t.name,
            t.wanted,
            t.measured,
            match t.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Spread;

    fn latency(live_sockets: u64, ms: f64) -> GetLatency {
        GetLatency {
            live_sockets,
            cli_ms: Spread::of(&[ms]),
            client_ms: None,
            daemon_rss_mib: 0.0,
        }
    }

    #[test]
    fn get_flatness_compares_the_most_sockets_with_the_fewest() {
        let latencies = [
            latency(100_000, 3.0),
            latency(1_000, 2.0),
            latency(1_000_000, 2.5),
        ];
        assert_eq!(get_flatness(&latencies), Some(1.25));
        assert_eq!(
            get_flatness_name(&latencies),
            "get at 1000000 ÷ get at 1000 live sockets"
        );
        assert_eq!(get_flatness(&latencies[..1]), None);
        assert_eq!(get_flatness(&[]), None);
    }
}
