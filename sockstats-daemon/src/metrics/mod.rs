//! Prometheus text exposition (format 0.0.4) of the totals and of the daemon's health.
//!
//! Cardinality is bounded by design: series are keyed by label name, interface name and
//! direction only, never by process, socket or cookie.
pub mod server;

use std::{collections::BTreeMap, fmt::Write as _};

use sockstats_common::{protocol::MapFill, IfaceCounters, Totals};

/// What the exposition shows besides the per-label totals.
#[derive(Debug, Default)]
pub struct Health {
    /// Kernel failure and event counters by name.
    pub counters: BTreeMap<String, u64>,
    pub maps: Vec<MapFill>,
    pub programs_attached: usize,
    pub programs_expected: usize,
    pub live_sockets: u64,
    pub overflow: Totals,
    pub wire_overflow: Totals,
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One counter family per (label, interface), picking a field of the counters.
fn per_label_interface(
    out: &mut String,
    labels: &BTreeMap<String, BTreeMap<String, IfaceCounters>>,
    name: &str,
    help: &str,
    field: impl Fn(&IfaceCounters) -> u64,
) {
    header(out, name, "counter", help);
    for (label, interfaces) in labels {
        for (interface, counters) in interfaces {
            let _ = writeln!(
                out,
                "{name}{{label=\"{}\",interface=\"{}\"}} {}",
                escape(label),
                escape(interface),
                field(counters)
            );
        }
    }
}

/// Renders the whole exposition.
#[must_use]
pub fn render(
    labels: &BTreeMap<String, BTreeMap<String, IfaceCounters>>,
    health: &Health,
) -> String {
    let mut out = String::new();
    per_label_interface(&mut out, labels, "sockstats_tx_bytes_total", "Payload bytes sent (sendmsg return values), by label and the interface the socket's packets used. Relabeling a live socket moves its bytes to the new label (this label's value then drops).", |c| c.payload.tx_bytes);
    per_label_interface(
        &mut out,
        labels,
        "sockstats_rx_bytes_total",
        "Payload bytes received (recvmsg return values), by label and interface.",
        |c| c.payload.rx_bytes,
    );
    per_label_interface(
        &mut out,
        labels,
        "sockstats_wire_tx_bytes_total",
        "IP-layer bytes sent (headers, ACKs and retransmits included), by label and interface.",
        |c| c.wire_bytes.tx_bytes,
    );
    per_label_interface(
        &mut out,
        labels,
        "sockstats_wire_rx_bytes_total",
        "IP-layer bytes received, by label and interface.",
        |c| c.wire_bytes.rx_bytes,
    );
    per_label_interface(
        &mut out,
        labels,
        "sockstats_wire_tx_packets_total",
        "IP packets sent (GSO super-packets count as their segments), by label and interface.",
        |c| c.wire_packets.tx_packets,
    );
    per_label_interface(
        &mut out,
        labels,
        "sockstats_wire_rx_packets_total",
        "IP packets received (GRO super-packets count as their segments), by label and interface.",
        |c| c.wire_packets.rx_packets,
    );

    render_health(&mut out, health);
    out
}

/// The daemon's own health: overflow, kernel events, map fill, programs, live sockets.
fn render_health(out: &mut String, health: &Health) {
    header(
        out,
        "sockstats_overflow_bytes_total",
        "counter",
        "Bytes of sockets the kernel could not track because a map was full.",
    );
    for (layer, totals) in [("payload", health.overflow), ("wire", health.wire_overflow)] {
        let _ = writeln!(
            out,
            "sockstats_overflow_bytes_total{{layer=\"{layer}\",direction=\"tx\"}} {}",
            totals.tx_bytes
        );
        let _ = writeln!(
            out,
            "sockstats_overflow_bytes_total{{layer=\"{layer}\",direction=\"rx\"}} {}",
            totals.rx_bytes
        );
    }
    header(
        out,
        "sockstats_kernel_events_total",
        "counter",
        "The kernel programs' failure and event counters.",
    );
    for (event, value) in &health.counters {
        let _ = writeln!(
            out,
            "sockstats_kernel_events_total{{event=\"{}\"}} {value}",
            escape(event)
        );
    }
    header(
        out,
        "sockstats_map_entries",
        "gauge",
        "Entries in each BPF map.",
    );
    for map in &health.maps {
        let _ = writeln!(
            out,
            "sockstats_map_entries{{map=\"{}\"}} {}",
            escape(&map.name),
            map.entries
        );
    }
    header(
        out,
        "sockstats_map_capacity",
        "gauge",
        "Capacity (max_entries) of each BPF map.",
    );
    for map in &health.maps {
        let _ = writeln!(
            out,
            "sockstats_map_capacity{{map=\"{}\"}} {}",
            escape(&map.name),
            map.capacity
        );
    }
    header(
        out,
        "sockstats_programs_attached",
        "gauge",
        "Kernel programs attached (of sockstats_programs_expected).",
    );
    let _ = writeln!(
        out,
        "sockstats_programs_attached {}",
        health.programs_attached
    );
    header(
        out,
        "sockstats_programs_expected",
        "gauge",
        "Kernel programs sockstats attaches.",
    );
    let _ = writeln!(
        out,
        "sockstats_programs_expected {}",
        health.programs_expected
    );
    header(
        out,
        "sockstats_live_sockets",
        "gauge",
        "Inet sockets tracked in the kernel right now.",
    );
    let _ = writeln!(out, "sockstats_live_sockets {}", health.live_sockets);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let mut labels = BTreeMap::new();
        let mut interfaces = BTreeMap::new();
        let counters = IfaceCounters {
            payload: Totals::new(5, 7),
            ..IfaceCounters::default()
        };
        interfaces.insert("we\"ird\\if".to_owned(), counters);
        labels.insert("web".to_owned(), interfaces);
        let text = render(
            &labels,
            &Health {
                programs_attached: 6,
                programs_expected: 6,
                ..Health::default()
            },
        );
        assert!(
            text.contains("# TYPE sockstats_tx_bytes_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "sockstats_tx_bytes_total{label=\"web\",interface=\"we\\\"ird\\\\if\"} 5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "sockstats_rx_bytes_total{label=\"web\",interface=\"we\\\"ird\\\\if\"} 7\n"
            ),
            "{text}"
        );
        assert!(text.contains("sockstats_programs_attached 6\n"), "{text}");
        assert!(text.ends_with('\n'));
    }
}
