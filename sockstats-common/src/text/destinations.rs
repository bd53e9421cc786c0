//! The `sockstats get --destinations` table (with `--interfaces` and `--cost`), and the
//! `--by … --destinations` table.
use std::{collections::BTreeMap, fmt::Write as _};

use super::{bytes_cell, largest_first, table};
use crate::protocol::{CostEstimate, DestinationStats, GetByReply, GetDestinationsReply};

/// Bytes in a GiB (2^30): prices are per GiB.
const GIB: f64 = 1_073_741_824.0;

/// The estimated cost of `tx` and `rx` bytes to `destination` at the reply's prices.
fn cost_of(cost: &CostEstimate, destination: &str, tx: u64, rx: u64) -> f64 {
    let price = |direction: &str| {
        cost.prices
            .get(destination)
            .and_then(|prices| prices.get(direction))
            .copied()
            .unwrap_or(0.0)
    };
    #[expect(clippy::cast_precision_loss, reason = "a cost estimate")]
    let (tx, rx) = (tx as f64, rx as f64);
    tx / GIB * price("tx") + rx / GIB * price("rx")
}

/// `$1.23`: two decimals, more for amounts below a cent so they do not read as nothing.
#[must_use]
pub fn money(currency: &str, amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 0.01 {
        format!("{currency}{amount:.6}")
    } else {
        format!("{currency}{amount:.2}")
    }
}

/// One destination's row of a split: (destination, tx, rx).
type DestinationRow = (String, u64, u64);

/// (destination, tx, rx) rows of one split, largest first.
fn destination_rows(tx: &BTreeMap<String, u64>, rx: &BTreeMap<String, u64>) -> Vec<DestinationRow> {
    let names: std::collections::BTreeSet<&String> = tx.keys().chain(rx.keys()).collect();
    let mut rows: Vec<DestinationRow> = names
        .into_iter()
        .map(|name| {
            (
                name.clone(),
                tx.get(name).copied().unwrap_or(0),
                rx.get(name).copied().unwrap_or(0),
            )
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.1.saturating_add(b.2))
            .cmp(&a.1.saturating_add(a.2))
            .then_with(|| a.0.cmp(&b.0))
    });
    rows
}

fn label_total(stats: &DestinationStats) -> (u64, u64) {
    (
        stats.tx_bytes_by_destination.values().sum(),
        stats.rx_bytes_by_destination.values().sum(),
    )
}

/// The `sockstats get --destinations` table: one row per label and destination (and
/// interface, when the reply has them) with traffic, labels by total payload, largest first;
/// with costs, a COST column and the estimate per label and in all below.
#[must_use]
pub fn destinations_table(reply: &GetDestinationsReply, exact: bool) -> String {
    let with_interfaces = reply.stats.values().any(|s| !s.by_interface.is_empty());
    let mut rows = Vec::new();
    let labels = largest_first(&reply.stats, label_total);
    for (label, stats) in &labels {
        // (interface, its rows): one split of no interface without --interfaces.
        let mut splits: Vec<(Option<&String>, Vec<DestinationRow>)> = Vec::new();
        if with_interfaces {
            for (interface, bytes) in &stats.by_interface {
                splits.push((
                    Some(interface),
                    destination_rows(
                        &bytes.tx_bytes_by_destination,
                        &bytes.rx_bytes_by_destination,
                    ),
                ));
            }
        } else {
            splits.push((
                None,
                destination_rows(
                    &stats.tx_bytes_by_destination,
                    &stats.rx_bytes_by_destination,
                ),
            ));
        }
        for (interface, destinations) in splits {
            for (destination, tx, rx) in destinations {
                let mut row = vec![(*label).clone(), destination.clone()];
                if let Some(interface) = interface {
                    row.push(interface.clone());
                }
                row.extend([bytes_cell(tx, exact), bytes_cell(rx, exact)]);
                if let Some(cost) = &reply.cost {
                    row.push(money(&cost.currency, cost_of(cost, &destination, tx, rx)));
                }
                rows.push(row);
            }
        }
    }
    let mut header = vec!["LABEL", "DESTINATION"];
    if with_interfaces {
        header.push("INTERFACE");
    }
    header.extend(["TX", "RX"]);
    if reply.cost.is_some() {
        header.push("COST");
    }
    let mut out = table(&header, if with_interfaces { 3 } else { 2 }, &rows);
    if let Some(cost) = &reply.cost {
        out.push_str(&cost_lines(cost, &labels));
    }
    out
}

/// Below the table: each label's estimated cost, the total, and the prices it comes from.
fn cost_lines(cost: &CostEstimate, labels: &[(&String, &DestinationStats)]) -> String {
    let mut out = String::new();
    let per_label: Vec<String> = labels
        .iter()
        .filter_map(|(label, stats)| {
            let amount = stats.cost?;
            (amount != 0.0).then(|| format!("{label} {}", money(&cost.currency, amount)))
        })
        .collect();
    if !per_label.is_empty() {
        let _ = writeln!(out, "estimated cost per label: {}", per_label.join(", "));
    }
    let mut prices = Vec::new();
    for (destination, by_direction) in &cost.prices {
        for (direction, price) in by_direction {
            prices.push(format!(
                "{destination} {direction} {}",
                money(&cost.currency, *price)
            ));
        }
    }
    let prices = if prices.is_empty() {
        "none".to_owned()
    } else {
        prices.join(", ")
    };
    let _ = writeln!(
        out,
        "estimated cost in all: {} (per GiB: {prices}; an estimate from the config's prices, not a bill)",
        money(&cost.currency, cost.total),
    );
    out
}

/// The `sockstats get --by … --destinations` table: one row per group and destination with
/// traffic, groups by total bytes, largest first.
#[must_use]
pub fn groups_by_destination_table(reply: &GetByReply, exact: bool) -> String {
    let mut rows = Vec::new();
    for (name, counts) in largest_first(&reply.stats, |c| (c.tx_bytes, c.rx_bytes)) {
        for (destination, tx, rx) in destination_rows(
            &counts.tx_bytes_by_destination,
            &counts.rx_bytes_by_destination,
        ) {
            rows.push(vec![
                name.clone(),
                destination,
                bytes_cell(tx, exact),
                bytes_cell(rx, exact),
            ]);
        }
    }
    let header = reply.by.name().to_uppercase();
    let mut out = table(&[&header, "DESTINATION", "TX", "RX"], 2, &rows);
    let _ = writeln!(out, "covers {}", reply.covers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DestinationBytes, GroupCounts, Grouping};

    fn map(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    fn reply() -> GetDestinationsReply {
        let mut reply = GetDestinationsReply::default();
        reply.stats.insert(
            "web".to_owned(),
            DestinationStats {
                tx_bytes_by_destination: map(&[("internet", 1 << 30), ("private", 10)]),
                rx_bytes_by_destination: map(&[("internet", 2048)]),
                ..DestinationStats::default()
            },
        );
        reply.stats.insert(
            "db".to_owned(),
            DestinationStats {
                tx_bytes_by_destination: map(&[("host", 5)]),
                ..DestinationStats::default()
            },
        );
        reply.destinations = vec!["host".into(), "internet".into(), "private".into()];
        reply
    }

    #[test]
    fn rows_are_labels_and_destinations_largest_first() {
        let text = destinations_table(&reply(), true);
        let lines: Vec<Vec<&str>> = text.lines().map(words).collect();
        assert_eq!(lines[0], ["LABEL", "DESTINATION", "TX", "RX"]);
        assert_eq!(lines[1], ["web", "internet", "1073741824", "2048"]);
        assert_eq!(lines[2], ["web", "private", "10", "0"]);
        assert_eq!(lines[3], ["db", "host", "5", "0"]);
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn costs_are_per_row_per_label_and_in_all() {
        let mut reply = reply();
        reply.stats.get_mut("web").unwrap().cost = Some(0.09);
        reply.stats.get_mut("db").unwrap().cost = Some(0.0);
        reply.cost = Some(CostEstimate {
            currency: "€".to_owned(),
            total: 0.09,
            prices: [("internet".to_owned(), [("tx".to_owned(), 0.09)].into())].into(),
        });
        let text = destinations_table(&reply, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(words(lines[0]).last(), Some(&"COST"), "{text}");
        assert_eq!(words(lines[1]).last(), Some(&"€0.09"), "{text}");
        assert_eq!(words(lines[2]).last(), Some(&"€0.00"), "{text}");
        assert_eq!(lines[4], "estimated cost per label: web €0.09");
        assert_eq!(
            lines[5],
            "estimated cost in all: €0.09 (per GiB: internet tx €0.09; an estimate from the config's prices, not a bill)"
        );
    }

    #[test]
    fn interfaces_split_each_label_further() {
        let mut reply = reply();
        reply.stats.get_mut("web").unwrap().by_interface.insert(
            "eth0".to_owned(),
            DestinationBytes {
                tx_bytes_by_destination: map(&[("internet", 7)]),
                rx_bytes_by_destination: map(&[]),
            },
        );
        let text = destinations_table(&reply, true);
        let lines: Vec<Vec<&str>> = text.lines().map(words).collect();
        assert_eq!(lines[0], ["LABEL", "DESTINATION", "INTERFACE", "TX", "RX"]);
        assert_eq!(lines[1], ["web", "internet", "eth0", "7", "0"]);
    }

    #[test]
    fn tiny_amounts_keep_their_digits() {
        assert_eq!(money("$", 0.000_123), "$0.000123");
        assert_eq!(money("$", 0.0), "$0.00");
        assert_eq!(money("$", 12.345), "$12.35");
    }

    #[test]
    fn groups_split_by_destination() {
        let mut stats = BTreeMap::new();
        stats.insert(
            "root".to_owned(),
            GroupCounts {
                tx_bytes: 15,
                rx_bytes: 0,
                live_sockets: 1,
                tx_bytes_by_destination: map(&[("internet", 10), ("host", 5)]),
                rx_bytes_by_destination: BTreeMap::new(),
            },
        );
        let reply = GetByReply {
            by: Grouping::Uid,
            stats,
            covers: "everything".to_owned(),
        };
        let text = groups_by_destination_table(&reply, true);
        let lines: Vec<Vec<&str>> = text.lines().map(words).collect();
        assert_eq!(lines[0], ["UID", "DESTINATION", "TX", "RX"]);
        assert_eq!(lines[1], ["root", "internet", "10", "0"]);
        assert_eq!(lines[2], ["root", "host", "5", "0"]);
    }
}
