//! The destination section's tables (its JSON is the [`DestinationResults`] itself).
use std::collections::BTreeMap;

use super::{DestinationResults, ProgramTime};
use crate::stats::Spread;

fn show(spread: Option<&Spread>, scale: f64, digits: usize) -> String {
    spread.map_or_else(|| "-".to_owned(), |s| s.show(scale, digits))
}

/// `name bytes, …` of the destinations that moved payload, largest first.
fn destinations(bytes: &BTreeMap<String, u64>) -> String {
    if bytes.is_empty() {
        return "nothing".to_owned();
    }
    let mut sorted: Vec<(&String, &u64)> = bytes.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1));
    sorted
        .iter()
        .map(|(name, bytes)| format!("{name} {bytes} B"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The median of `packet_egress`'s net ns in `workload` with `prefixes` named prefixes.
fn egress_net(times: &[ProgramTime], workload: &str, prefixes: usize) -> Option<f64> {
    times
        .iter()
        .find(|t| t.workload == workload && t.prefixes == prefixes)
        .and_then(|t| t.packet_egress_net_ns.as_ref())
        .map(|s| s.median)
}

/// Prints the section's tables.
pub fn print(results: &DestinationResults) {
    println!(
        "destination classification (issue 15): {}",
        results.topology
    );
    println!("  named prefixes: {}", results.prefixes);
    let mut counts: Vec<usize> = results.matching.iter().map(|m| m.prefixes).collect();
    counts.dedup();
    for count in counts {
        let held: Vec<String> = results
            .matching
            .iter()
            .filter(|m| m.prefixes == count)
            .map(|m| {
                format!(
                    "{} {} in {}",
                    m.side,
                    m.address,
                    m.network.as_deref().unwrap_or("none")
                )
            })
            .collect();
        println!("  {count:>5} prefixes: {}", held.join(", "));
    }
    println!("  socket states: {}\n", results.socket_states);
    let counts: Vec<usize> = results
        .rates
        .first()
        .map(|r| r.sockstats.iter().map(|p| p.prefixes).collect())
        .unwrap_or_default();
    print!("{:<22} {:>22}", "workload", "baseline");
    for count in &counts {
        print!(" {:>22}", format!("{count} prefixes ratio"));
    }
    println!("  unit");
    for rates in &results.rates {
        print!(
            "{:<22} {:>22}",
            rates.workload,
            show(rates.baseline.as_ref(), 1e-3, 0)
        );
        for with in &rates.sockstats {
            print!(" {:>22}", show(with.ratio.as_ref(), 1.0, 3));
        }
        println!("  k {}", rates.unit);
    }
    println!(
        "\npacket programs in these workloads, ns per run (kernel.bpf_stats_enabled, on only in \
         a pass after each round's timed runs), median [min–max]; net = minus the empty \
         cgroup_skb program of the same direction"
    );
    println!(
        "{:<22} {:>8} {:>9} {:>20} {:>20} {:>9} {:>20} {:>20} {:>10} {:>10}",
        "workload",
        "prefixes",
        "egress",
        "packet_egress",
        "net",
        "ingress",
        "packet_ingress",
        "net",
        "empty egr",
        "empty ingr"
    );
    for t in &results.program_time {
        println!(
            "{:<22} {:>8} {:>9} {:>20} {:>20} {:>9} {:>20} {:>20} {:>10} {:>10}",
            t.workload,
            t.prefixes,
            t.packet_egress_runs,
            show(t.packet_egress_ns.as_ref(), 1.0, 1),
            show(t.packet_egress_net_ns.as_ref(), 1.0, 1),
            t.packet_ingress_runs,
            show(t.packet_ingress_ns.as_ref(), 1.0, 1),
            show(t.packet_ingress_net_ns.as_ref(), 1.0, 1),
            t.empty_egress_ns
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}", s.median)),
            t.empty_ingress_ns
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}", s.median)),
        );
    }
    print!("a lookup per datagram (packet_egress net, udp_alternating_peers − udp_same_peer):");
    for &count in &counts {
        let extra = egress_net(&results.program_time, "udp_alternating_peers", count)
            .zip(egress_net(&results.program_time, "udp_same_peer", count))
            .map_or_else(|| "-".to_owned(), |(a, s)| format!("{:.1} ns", a - s));
        print!(" {count} prefixes {extra};");
    }
    println!("\npayload accounted per destination in the last round's pass:");
    for t in &results.program_time {
        println!(
            "  {:<22} {:>5} prefixes: sent to {}; received from {}",
            t.workload,
            t.prefixes,
            destinations(&t.accounted.tx_bytes_by_destination),
            destinations(&t.accounted.rx_bytes_by_destination)
        );
    }
    println!();
}
