//! Human output: byte units and aligned tables (what `sockstats` prints, and what
//! [`crate::sockstats::debug_info`] returns).
use std::{
    fmt::Write as _,
    sync::atomic::{AtomicBool, Ordering},
};

use crate::protocol::{
    ByteCounts, DebugReply, GetByReply, GetInterfacesReply, GetReply, HistoryStatus, LabelsReply,
    OtlpDebug, QuotaState, QuotasReply, RulesReply, StatusReply, ValidationReply, WireCounts,
};

mod destinations;
mod peers;

pub use destinations::{destinations_table, groups_by_destination_table, money};
pub use peers::peers_table;

static COLOUR: AtomicBool = AtomicBool::new(false);

/// Turns bold table headers on or off (off by default). The CLI turns them on when stdout is a
/// terminal and `NO_COLOR` is unset.
pub fn set_colour(enabled: bool) {
    COLOUR.store(enabled, Ordering::Relaxed);
}

/// `1536` → `1.5 KiB`; below 1 KiB the exact count, e.g. `512 B`.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "one decimal place is shown")]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Renders rows as columns with [`comfy_table`], without borders: the first `text_columns`
/// left-aligned (names), the others right-aligned (numbers), two spaces between columns, no
/// trailing spaces.
#[must_use]
pub fn table(header: &[&str], text_columns: usize, rows: &[Vec<String>]) -> String {
    render_table(header, text_columns, rows, COLOUR.load(Ordering::Relaxed))
}

/// [`table`], with the header bold or not.
fn render_table(header: &[&str], text_columns: usize, rows: &[Vec<String>], bold: bool) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row.iter().map(String::as_str));
    }
    let last = header.len().saturating_sub(1);
    for (index, column) in table.column_iter_mut().enumerate() {
        // Two spaces between columns, none before the first or after the last.
        column.set_padding((0, if index == last { 0 } else { 2 }));
        column.set_cell_alignment(if index < text_columns {
            comfy_table::CellAlignment::Left
        } else {
            comfy_table::CellAlignment::Right
        });
    }
    let mut out = String::new();
    for (index, line) in table.trim_fmt().lines().enumerate() {
        if index == 0 && bold {
            let _ = write!(out, "\x1b[1m{line}\x1b[0m");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn bytes_cell(bytes: u64, exact: bool) -> String {
    if exact {
        bytes.to_string()
    } else {
        human_bytes(bytes)
    }
}

/// The `sockstats quotas` table, in config order, and when the history was last recorded.
#[must_use]
pub fn quotas_table(reply: &QuotasReply, exact: bool) -> String {
    if reply.quotas.is_empty() {
        return "no quotas: add `quota` lines to the daemon's config file (README, \"Quotas and alerts\")\n"
            .to_owned();
    }
    let rows: Vec<Vec<String>> = reply
        .quotas
        .iter()
        .map(|quota| {
            vec![
                quota.quota.clone(),
                match quota.state {
                    QuotaState::Ok => "ok",
                    QuotaState::Warn => "warn",
                    QuotaState::Over => "over",
                }
                .to_owned(),
                bytes_cell(quota.used_bytes, exact),
                bytes_cell(quota.limit_bytes, exact),
                format!("{:.1} %", quota.used_ratio * 100.0),
                format!("{} – {}", quota.period_start, quota.period_end),
                quota.last_fired.as_ref().map_or_else(
                    || "never".to_owned(),
                    |fired| format!("{} at {}", fired.threshold.name(), fired.at),
                ),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "QUOTA",
            "STATE",
            "USED",
            "LIMIT",
            "USE",
            "PERIOD",
            "LAST FIRED",
        ],
        2,
        &rows,
    );
    if let Some(until) = &reply.recorded_until {
        let _ = writeln!(out, "as recorded until {until}");
    }
    out
}

/// The `sockstats get --validation` table and what it covers.
#[must_use]
pub fn validation_table(reply: &ValidationReply, exact: bool) -> String {
    let mut out = table(
        &["LABEL", "TX (ACKED)", "RX (RECEIVED)"],
        1,
        &label_rows(&reply.stats, exact),
    );
    let _ = writeln!(
        out,
        "{} live and {} closed TCP sockets; covers {}",
        reply.live_tcp_sockets, reply.closed_tcp_sockets, reply.covers
    );
    out
}

/// The entries of `stats` by total bytes (tx + rx, as `bytes` gives them), largest first;
/// ties by name.
fn largest_first<T>(
    stats: &std::collections::BTreeMap<String, T>,
    bytes: impl Fn(&T) -> (u64, u64),
) -> Vec<(&String, &T)> {
    let total = |value: &T| {
        let (tx, rx) = bytes(value);
        tx.saturating_add(rx)
    };
    let mut entries: Vec<(&String, &T)> = stats.iter().collect();
    entries.sort_by(|a, b| total(b.1).cmp(&total(a.1)).then_with(|| a.0.cmp(b.0)));
    entries
}

fn label_rows(
    stats: &std::collections::BTreeMap<String, ByteCounts>,
    exact: bool,
) -> Vec<Vec<String>> {
    largest_first(stats, |c| (c.tx_bytes, c.rx_bytes))
        .into_iter()
        .map(|(name, c)| {
            vec![
                name.clone(),
                bytes_cell(c.tx_bytes, exact),
                bytes_cell(c.rx_bytes, exact),
            ]
        })
        .collect()
}

/// The last line of the `get` tables.
fn current_interface_line(current_interface: Option<&str>) -> String {
    format!(
        "current interface: {}\n",
        current_interface.unwrap_or("none (no default route)")
    )
}

/// `current interface: wwan0 (metered)` when it is.
fn current_interface_line_of(reply: &GetReply) -> String {
    let mut line = current_interface_line(reply.current_interface.as_deref());
    if reply.current_interface_metered {
        line.insert_str(line.len() - 1, " (metered)");
    }
    line
}

/// The kernel's counters, by name.
fn counters_table(counters: &std::collections::BTreeMap<String, u64>) -> String {
    let rows: Vec<Vec<String>> = counters
        .iter()
        .map(|(name, value)| vec![name.clone(), value.to_string()])
        .collect();
    table(&["KERNEL COUNTER", "VALUE"], 1, &rows)
}

/// The `sockstats get` table: labels by total bytes, largest first.
#[must_use]
pub fn get_table(reply: &GetReply, exact: bool) -> String {
    let mut rows = label_rows(&reply.stats, exact);
    if reply.overflow != ByteCounts::default() {
        rows.push(vec![
            "(overflow: map full)".to_owned(),
            bytes_cell(reply.overflow.tx_bytes, exact),
            bytes_cell(reply.overflow.rx_bytes, exact),
        ]);
    }
    let mut out = table(&["LABEL", "TX", "RX"], 1, &rows);
    out.push_str(&current_interface_line_of(reply));
    out
}

/// The `sockstats get --interfaces` table: one row per label and interface with traffic,
/// labels by total payload (largest first); with `wire`, IP-layer bytes and packets too.
#[must_use]
pub fn interfaces_table(reply: &GetInterfacesReply, exact: bool, wire: bool) -> String {
    let total = |name: &String| -> u64 {
        reply.stats.get(name).map_or(0, |s| {
            s.tx_bytes_by_interface
                .values()
                .chain(s.rx_bytes_by_interface.values())
                .sum()
        })
    };
    let mut labels: Vec<&String> = reply.stats.keys().collect();
    labels.sort_by(|a, b| total(b).cmp(&total(a)).then_with(|| a.cmp(b)));
    let mut rows = Vec::new();
    for label in labels {
        let stats = &reply.stats[label];
        let interfaces: std::collections::BTreeSet<&String> = stats
            .tx_bytes_by_interface
            .keys()
            .chain(stats.rx_bytes_by_interface.keys())
            .collect();
        for interface in interfaces {
            let tx = stats
                .tx_bytes_by_interface
                .get(interface)
                .copied()
                .unwrap_or(0);
            let rx = stats
                .rx_bytes_by_interface
                .get(interface)
                .copied()
                .unwrap_or(0);
            let mut row = vec![
                label.clone(),
                interface.clone(),
                bytes_cell(tx, exact),
                bytes_cell(rx, exact),
            ];
            if wire {
                let counts: WireCounts = reply
                    .wire
                    .get(label)
                    .and_then(|w| w.get(interface))
                    .copied()
                    .unwrap_or_default();
                row.extend([
                    bytes_cell(counts.tx_bytes, exact),
                    bytes_cell(counts.rx_bytes, exact),
                    counts.tx_packets.to_string(),
                    counts.rx_packets.to_string(),
                ]);
            }
            rows.push(row);
        }
    }
    let mut header = vec!["LABEL", "INTERFACE", "TX", "RX"];
    if wire {
        header.extend(["WIRE TX", "WIRE RX", "PKTS TX", "PKTS RX"]);
    }
    let mut out = table(&header, 2, &rows);
    out.push_str(&current_interface_line(reply.current_interface.as_deref()));
    out
}

/// The `sockstats debug` screen.
#[must_use]
pub fn debug_text(reply: &DebugReply) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sockstatsd {} on Linux {}, up {:.0} s; {} live sockets, {} labels",
        reply.version, reply.kernel, reply.uptime_seconds, reply.live_sockets, reply.labels
    );
    let _ = writeln!(
        out,
        "socket {}  cgroup root {}\npins {}  state {}",
        reply.socket, reply.cgroup_root, reply.bpffs_dir, reply.state_dir
    );
    let stats_note = if reply.bpf_stats_enabled {
        "kernel.bpf_stats_enabled=1"
    } else {
        "kernel.bpf_stats_enabled=0: run counts and times are not kept (sysctl -w kernel.bpf_stats_enabled=1)"
    };
    let _ = writeln!(out, "{stats_note}");
    let _ = writeln!(
        out,
        "payload hooks: {} ({})",
        reply.payload_hooks.set, reply.payload_hooks.reason
    );
    for limit in &reply.kernel_limits {
        let _ = writeln!(out, "kernel limit: {limit}");
    }
    let rows: Vec<Vec<String>> = reply
        .programs
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.hook.clone(),
                p.prog_id.map_or("-".to_owned(), |id| id.to_string()),
                p.run_count.to_string(),
                p.average_ns.map_or("-".to_owned(), |ns| format!("{ns:.0}")),
            ]
        })
        .collect();
    out.push_str(&table(
        &["PROGRAM", "HOOK", "PROG ID", "RUNS", "AVG NS"],
        2,
        &rows,
    ));
    let rows: Vec<Vec<String>> = reply
        .maps
        .iter()
        .map(|m| {
            #[expect(clippy::cast_precision_loss, reason = "a percentage for display")]
            let percent = if m.capacity == 0 {
                0.0
            } else {
                m.entries as f64 * 100.0 / m.capacity as f64
            };
            vec![
                m.name.clone(),
                m.entries.to_string(),
                m.capacity.to_string(),
                format!("{percent:.1}%"),
            ]
        })
        .collect();
    out.push_str(&table(&["MAP", "ENTRIES", "CAPACITY", "FILL"], 1, &rows));
    out.push_str(&counters_table(&reply.counters));
    if let Some(history) = &reply.history {
        out.push_str(&history_line(history));
    }
    if let Some(otlp) = &reply.otlp {
        out.push_str(&otlp_text(otlp));
    }
    out
}

/// The OTLP exporter's lines of `sockstats debug`.
fn otlp_text(otlp: &OtlpDebug) -> String {
    let mut out = format!(
        "otlp {} every {} s: {} sent, {} failed, {} refused, {} dropped, {} queued (of {})\n",
        otlp.endpoint,
        otlp.interval_seconds,
        otlp.sent,
        otlp.failed,
        otlp.refused,
        otlp.dropped,
        otlp.queued,
        otlp.queue_limit
    );
    if let Some(at) = &otlp.last_success_at {
        let _ = writeln!(out, "otlp last sent {at}");
    }
    if let (Some(error), Some(at)) = (&otlp.last_error, &otlp.last_error_at) {
        let _ = writeln!(out, "otlp last error {at}: {error}");
    }
    out
}

/// The `sockstats get --by …` table: groups by total bytes, largest first.
#[must_use]
pub fn groups_table(reply: &GetByReply, exact: bool) -> String {
    let rows: Vec<Vec<String>> = largest_first(&reply.stats, |c| (c.tx_bytes, c.rx_bytes))
        .into_iter()
        .map(|(name, c)| {
            vec![
                name.clone(),
                bytes_cell(c.tx_bytes, exact),
                bytes_cell(c.rx_bytes, exact),
                c.live_sockets.to_string(),
            ]
        })
        .collect();
    let header = reply.by.name().to_uppercase();
    let mut out = table(&[&header, "TX", "RX", "LIVE SOCKETS"], 1, &rows);
    let _ = writeln!(out, "covers {}", reply.covers);
    out
}

/// The `sockstats rules` table.
#[must_use]
pub fn rules_table(reply: &RulesReply) -> String {
    if reply.rules.is_empty() {
        return "no rules (add one with `sockstats rules add`, or in the rules file)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = reply
        .rules
        .iter()
        .map(|rule| {
            let selector = &rule.selector;
            let (kind, what) = if let Some(uid) = selector.uid {
                ("uid", uid.to_string())
            } else if let Some(path) = &selector.cgroup {
                ("cgroup", path.clone())
            } else if let Some(unit) = &selector.unit {
                ("unit", unit.clone())
            } else if let Some(container) = &selector.container {
                ("container", container.clone())
            } else {
                ("user", selector.user.clone().unwrap_or_default())
            };
            let state = match (rule.active, rule.cgroups.as_slice()) {
                (true, []) => "active".to_owned(),
                (true, cgroups) => format!("active ({})", cgroups.join(", ")),
                (false, _) if selector.cgroup.is_some() => {
                    "inactive (no such cgroup now)".to_owned()
                }
                (false, _) => format!("inactive (no such {kind} running now)"),
            };
            vec![
                kind.to_owned(),
                what,
                rule.label.clone(),
                rule.source.clone(),
                state,
            ]
        })
        .collect();
    table(&["KIND", "MATCHES", "LABEL", "SOURCE", "STATE"], 5, &rows)
}

/// The `sockstats labels` table.
#[must_use]
pub fn labels_table(reply: &LabelsReply) -> String {
    let rows: Vec<Vec<String>> = reply
        .labels
        .iter()
        .map(|l| vec![l.name.clone(), l.id.to_string()])
        .collect();
    table(&["LABEL", "ID"], 1, &rows)
}

/// The `sockstats status` text.
#[must_use]
pub fn status_text(reply: &StatusReply) -> String {
    let mut out = format!(
        "sockstatsd {}: {}\npayload hooks: {} ({})\nsocket states: {}\ncgroup root: {}\npins: {}\nstate: {}\nlive sockets: {}\n",
        reply.version,
        if reply.attached {
            "attached"
        } else {
            "NOT attached"
        },
        reply.payload_hooks.set,
        reply.payload_hooks.reason,
        reply.socket_states.replace('_', " "),
        reply.cgroup_root,
        reply.bpffs_dir,
        reply.state_dir,
        reply.live_sockets
    );
    let rows: Vec<Vec<String>> = reply
        .programs
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.hook.clone(),
                p.prog_id.map_or("-".to_owned(), |id| id.to_string()),
            ]
        })
        .collect();
    for limit in &reply.kernel_limits {
        let _ = writeln!(out, "kernel limit: {limit}");
    }
    if let Some(history) = &reply.history {
        out.push_str(&history_line(history));
    }
    out.push_str(&table(&["PROGRAM", "HOOK", "PROG ID"], 2, &rows));
    out.push_str(&counters_table(&reply.counters));
    out
}

/// The usage history's health in one line (`status`, `debug`).
#[must_use]
pub fn history_line(history: &HistoryStatus) -> String {
    match (&history.error, &history.recorded_until) {
        (Some(error), _) => format!("history: NOT recording: {error}\n"),
        (None, Some(until)) => format!(
            "history: {} (every {} s, last at {until})\n",
            history.path, history.interval_seconds
        ),
        (None, None) => format!(
            "history: {} (every {} s, nothing recorded yet)\n",
            history.path, history.interval_seconds
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RuleInfo, RuleSelector};

    #[test]
    fn the_exporter_lines_say_its_counts_and_last_error() {
        let mut otlp = OtlpDebug {
            endpoint: "http://127.0.0.1:4318/v1/metrics".to_owned(),
            interval_seconds: 60.0,
            sent: 4,
            failed: 3,
            refused: 1,
            dropped: 2,
            queued: 5,
            queue_limit: 30,
            ..OtlpDebug::default()
        };
        assert_eq!(
            otlp_text(&otlp),
            "otlp http://127.0.0.1:4318/v1/metrics every 60 s: 4 sent, 3 failed, 1 refused, 2 dropped, 5 queued (of 30)\n"
        );
        otlp.last_error = Some("connection refused".to_owned());
        otlp.last_error_at = Some("2026-12-02T02:00:00Z".to_owned());
        otlp.last_success_at = Some("2026-12-02T01:59:00Z".to_owned());
        let text = otlp_text(&otlp);
        assert!(text.ends_with("otlp last sent 2026-12-02T01:59:00Z\notlp last error 2026-12-02T02:00:00Z: connection refused\n"), "{text}");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn get_table_sorts_by_total_and_aligns() {
        let mut reply = GetReply::default();
        reply.stats.insert(
            "small".into(),
            ByteCounts {
                tx_bytes: 1,
                rx_bytes: 1,
            },
        );
        reply.stats.insert(
            "big".into(),
            ByteCounts {
                tx_bytes: 4096,
                rx_bytes: 10,
            },
        );
        let text = get_table(&reply, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "LABEL    TX  RX");
        assert_eq!(lines[1], "big    4096  10");
        assert_eq!(lines[2], "small     1   1");
        assert_eq!(lines[3], "current interface: none (no default route)");
        assert!(get_table(&reply, false).contains("4.0 KiB"));
    }

    #[test]
    fn table_has_no_borders_and_aligns_names_left_numbers_right() {
        let rows = vec![
            vec![
                "uploader".to_owned(),
                "1.2 GiB".to_owned(),
                "3.4 MiB".to_owned(),
            ],
            vec![
                "unlabeled".to_owned(),
                "8.1 MiB".to_owned(),
                "92 MiB".to_owned(),
            ],
        ];
        assert_eq!(
            table(&["LABEL", "TX", "RX"], 1, &rows),
            "LABEL           TX       RX\n\
             uploader   1.2 GiB  3.4 MiB\n\
             unlabeled  8.1 MiB   92 MiB\n"
        );
        // Only the header when there are no rows; no trailing spaces after a short last column.
        assert_eq!(table(&["LABEL", "ID"], 1, &[]), "LABEL  ID\n");
        let rows = vec![
            vec![
                "cgroup".to_owned(),
                "/a/long/path".to_owned(),
                "web".to_owned(),
            ],
            vec!["uid".to_owned(), "34".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table(&["KIND", "MATCHES", "LABEL"], 3, &rows),
            "KIND    MATCHES       LABEL\ncgroup  /a/long/path  web\nuid     34            x\n"
        );
    }

    #[test]
    fn interfaces_table_with_wire_keeps_its_columns_and_order() {
        let mut reply = GetInterfacesReply::default();
        let mut stats = crate::protocol::InterfaceStats::default();
        stats.tx_bytes_by_interface.insert("lo".into(), 5000);
        stats.rx_bytes_by_interface.insert("lo".into(), 70);
        stats.tx_bytes_by_interface.insert("eth0".into(), 1);
        reply.stats.insert("cli-label".into(), stats);
        let text = interfaces_table(&reply, true, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "LABEL      INTERFACE    TX  RX  WIRE TX  WIRE RX  PKTS TX  PKTS RX"
        );
        assert_eq!(
            lines[1],
            "cli-label  eth0          1   0        0        0        0        0"
        );
        assert_eq!(
            lines[2],
            "cli-label  lo         5000  70        0        0        0        0"
        );
        assert!(lines[3].starts_with("current interface:"));
    }

    #[test]
    fn rules_table_names_each_kind_and_where_unit_and_container_rules_apply() {
        let rule = |selector: RuleSelector, active, cgroups: &[&str]| RuleInfo {
            selector,
            label: "l".to_owned(),
            source: "client".to_owned(),
            active,
            cgroup_id: None,
            cgroups: cgroups.iter().map(|c| (*c).to_owned()).collect(),
        };
        let reply = RulesReply {
            rules: vec![
                rule(
                    RuleSelector::unit("web.service"),
                    true,
                    &["/system.slice/web.service"],
                ),
                rule(RuleSelector::container("shop"), false, &[]),
                rule(RuleSelector::cgroup("/gone"), false, &[]),
            ],
        };
        let table = rules_table(&reply);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].starts_with("unit")
                && lines[1].ends_with("active (/system.slice/web.service)"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("container")
                && lines[2].ends_with("inactive (no such container running now)"),
            "{table}"
        );
        assert!(
            lines[3].ends_with("inactive (no such cgroup now)"),
            "{table}"
        );
    }

    #[test]
    fn quotas_table_shows_use_state_and_firings_in_config_order() {
        use crate::protocol::{Period, QuotaFired, QuotaThreshold, QuotaUse};
        let quota = |text: &str, used, state, last_fired| QuotaUse {
            quota: text.to_owned(),
            label: "web".to_owned(),
            interface: "*".to_owned(),
            metered: false,
            direction: "both".to_owned(),
            period: Period::Day,
            period_start: "2026-12-02T00:00:00Z".to_owned(),
            period_end: "2026-12-03T00:00:00Z".to_owned(),
            used_bytes: used,
            limit_bytes: 2048,
            warn_percent: 80,
            #[expect(clippy::cast_precision_loss, reason = "test values are small")]
            used_ratio: used as f64 / 2048.0,
            state,
            last_fired,
        };
        let reply = QuotasReply {
            quotas: vec![
                quota(
                    "quota web day 2KiB",
                    3072,
                    QuotaState::Over,
                    Some(QuotaFired {
                        threshold: QuotaThreshold::Limit,
                        period_start: "2026-12-02T00:00:00Z".to_owned(),
                        at: "2026-12-02T10:00:00Z".to_owned(),
                    }),
                ),
                quota("quota * day 2KiB", 0, QuotaState::Ok, None),
            ],
            recorded_until: Some("2026-12-02T10:01:00Z".to_owned()),
        };
        let text = quotas_table(&reply, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("QUOTA") && lines[0].ends_with("LAST FIRED"),
            "{text}"
        );
        assert!(lines[1].starts_with("quota web day 2KiB  over"), "{text}");
        assert!(
            lines[1].contains("3.0 KiB") && lines[1].contains("150.0 %"),
            "{text}"
        );
        assert!(
            lines[1].ends_with("limit at 2026-12-02T10:00:00Z"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("quota * day 2KiB") && lines[2].ends_with("never"),
            "{text}"
        );
        assert_eq!(lines[3], "as recorded until 2026-12-02T10:01:00Z");
        assert!(quotas_table(&reply, true).contains("3072"));
        let none = QuotasReply {
            quotas: Vec::new(),
            recorded_until: None,
        };
        assert!(quotas_table(&none, false).starts_with("no quotas"));
    }

    #[test]
    fn bold_header_wraps_the_whole_first_line() {
        let rows = [vec!["a".to_owned(), "1".to_owned()]];
        let text = render_table(&["LABEL", "ID"], 1, &rows, true);
        assert_eq!(text, "\x1b[1mLABEL  ID\x1b[0m\na       1\n");
    }
}
