//! The exposition of the totals and of the daemon's health, written by `prometheus-client`:
//! `OpenMetrics` text (ending in `# EOF`) for scrapers that ask for it, else the Prometheus text
//! format 0.0.4.
//!
//! Every value is cumulative and owned by the kernel's maps, so nothing is instrumented here:
//! each scrape builds a fresh `Registry` holding one [`Collector`] over that scrape's snapshot,
//! which writes every sample as a `ConstCounter` or `ConstGauge`.
//!
//! Cardinality is bounded by design: series are keyed by label name, interface name,
//! destination (the three classes and the config's named networks) and direction only, never
//! by process, socket, cookie or remote address.
pub mod collect;
pub mod server;

use std::collections::BTreeMap;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use sockstats_common::{protocol::MapFill, IfaceCounters, Totals};

use crate::ops::naming::NamedRoute;

/// What the exposition shows besides the per-label totals.
#[derive(Debug, Default, Clone)]
pub struct Health {
    /// Kernel failure and event counters by name.
    pub counters: BTreeMap<String, u64>,
    pub maps: Vec<MapFill>,
    pub programs_attached: usize,
    pub programs_expected: usize,
    pub live_sockets: u64,
    pub overflow: Totals,
    pub wire_overflow: Totals,
    /// Each quota's use of its current period (the endpoint only; not exported over OTLP).
    pub quotas: Vec<QuotaRatio>,
}

/// One `sockstats_quota_used_ratio` sample.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaRatio {
    /// The quota's config line (its name).
    pub quota: String,
    /// The label, or `*`.
    pub label: String,
    /// The interface glob, or `*`.
    pub interface: String,
    pub period: &'static str,
    /// Used bytes over the limit.
    pub ratio: f64,
}

/// The two text formats served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `OpenMetrics` 1.0.0 text (`# EOF` last).
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Prometheus,
}

/// The `Content-Type` of `OpenMetrics` text, as Prometheus asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    /// The format an `Accept` header asks for: `OpenMetrics` when it names
    /// `application/openmetrics-text` with a non-zero quality, else 0.0.4 (also when it is
    /// absent). Prometheus' own scrapes name both, `OpenMetrics` first.
    #[must_use]
    pub fn negotiate(accept: Option<&str>) -> Self {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let zero_quality = parts.any(|parameter| {
                    parameter
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !zero_quality
            })
        });
        if wants_openmetrics {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The reply's `Content-Type`.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// One scrape's snapshot, written by `prometheus-client` through [`Collector::encode`].
#[derive(Debug)]
struct Snapshot {
    labels: BTreeMap<String, BTreeMap<NamedRoute, IfaceCounters>>,
    health: Health,
}

/// A family's name without the `_total` that `prometheus-client` appends to counters.
type Field = fn(&IfaceCounters) -> u64;

/// The per-(label, interface) counter families: name (less `_total`), HELP, value.
const PER_LABEL_INTERFACE: [(&str, &str, Field); 6] = [
    (
        "sockstats_tx_bytes",
        "Payload bytes sent (sendmsg return values), by label, the interface the socket's packets used and the destination of their remote address. Relabeling a live socket moves its bytes to the new label (this label's value then drops).",
        |c| c.payload.tx_bytes,
    ),
    (
        "sockstats_rx_bytes",
        "Payload bytes received (recvmsg return values), by label, interface and destination.",
        |c| c.payload.rx_bytes,
    ),
    (
        "sockstats_wire_tx_bytes",
        "IP-layer bytes sent (headers, ACKs and retransmits included), by label, interface and destination.",
        |c| c.wire_bytes.tx_bytes,
    ),
    (
        "sockstats_wire_rx_bytes",
        "IP-layer bytes received, by label, interface and destination.",
        |c| c.wire_bytes.rx_bytes,
    ),
    (
        "sockstats_wire_tx_packets",
        "IP packets sent (GSO super-packets count as their segments), by label, interface and destination.",
        |c| c.wire_packets.tx_packets,
    ),
    (
        "sockstats_wire_rx_packets",
        "IP packets received (GRO super-packets count as their segments), by label, interface and destination.",
        |c| c.wire_packets.rx_packets,
    ),
];

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, field) in PER_LABEL_INTERFACE {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (label, routes) in &self.labels {
                for (route, counters) in routes {
                    let labels = [
                        ("label", label.as_str()),
                        ("interface", route.interface.as_str()),
                        ("destination", route.destination.as_str()),
                    ];
                    ConstCounter::new(field(counters)).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        self.encode_health(&mut encoder)
    }
}

impl Snapshot {
    /// The daemon's own health: overflow, kernel events, map fill, programs, live sockets.
    fn encode_health(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let health = &self.health;
        let mut family = encoder.encode_descriptor(
            "sockstats_overflow_bytes",
            "Bytes of sockets the kernel could not track because a map was full.",
            None,
            MetricType::Counter,
        )?;
        for (layer, totals) in [("payload", health.overflow), ("wire", health.wire_overflow)] {
            for (direction, value) in [("tx", totals.tx_bytes), ("rx", totals.rx_bytes)] {
                let labels = [("layer", layer), ("direction", direction)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "sockstats_kernel_events",
            "The kernel programs' failure and event counters.",
            None,
            MetricType::Counter,
        )?;
        for (event, value) in &health.counters {
            let labels = [("event", event.as_str())];
            ConstCounter::new(*value).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "sockstats_map_entries",
            "Entries in each BPF map.",
            None,
            MetricType::Gauge,
        )?;
        for map in &health.maps {
            let labels = [("map", map.name.as_str())];
            ConstGauge::new(map.entries).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "sockstats_map_capacity",
            "Capacity (max_entries) of each BPF map.",
            None,
            MetricType::Gauge,
        )?;
        for map in &health.maps {
            let labels = [("map", map.name.as_str())];
            ConstGauge::new(map.capacity).encode(family.encode_family(&labels)?)?;
        }
        if !health.quotas.is_empty() {
            let mut family = encoder.encode_descriptor(
                "sockstats_quota_used_ratio",
                "Bytes a quota (a config file quota line) counted in its current period, over its limit: 1 is the limit. Read from the usage history, so as of its last recording.",
                None,
                MetricType::Gauge,
            )?;
            for quota in &health.quotas {
                let labels = [
                    ("quota", quota.quota.as_str()),
                    ("label", quota.label.as_str()),
                    ("interface", quota.interface.as_str()),
                    ("period", quota.period),
                ];
                ConstGauge::new(quota.ratio).encode(family.encode_family(&labels)?)?;
            }
        }
        for (name, help, value) in [
            (
                "sockstats_programs_attached",
                "Kernel programs attached (of sockstats_programs_expected).",
                health.programs_attached as u64,
            ),
            (
                "sockstats_programs_expected",
                "Kernel programs sockstats attaches.",
                health.programs_expected as u64,
            ),
            (
                "sockstats_live_sockets",
                "Inet sockets tracked in the kernel right now.",
                health.live_sockets,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// Renders the whole exposition in `format`.
#[must_use]
pub fn render(
    labels: BTreeMap<String, BTreeMap<NamedRoute, IfaceCounters>>,
    health: Health,
    format: Format,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot { labels, health }));
    let mut out = String::new();
    let written = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    // Writing to a String cannot fail, and the collector only writes.
    written.expect("encoding into a String");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(interface: &str, destination: &str) -> NamedRoute {
        NamedRoute {
            interface: interface.to_owned(),
            destination: destination.to_owned(),
        }
    }

    fn sample() -> (
        BTreeMap<String, BTreeMap<NamedRoute, IfaceCounters>>,
        Health,
    ) {
        let mut labels = BTreeMap::new();
        let mut interfaces = BTreeMap::new();
        let counters = IfaceCounters {
            payload: Totals::new(5, 7),
            ..IfaceCounters::default()
        };
        interfaces.insert(route("we\"ird\\if", "internet"), counters);
        interfaces.insert(
            route("lo", "host"),
            IfaceCounters {
                payload: Totals::new(1 << 40, 3),
                ..IfaceCounters::default()
            },
        );
        labels.insert("web".to_owned(), interfaces);
        let mut counters = BTreeMap::new();
        counters.insert("ringbuf_drops".to_owned(), 2);
        let health = Health {
            counters,
            maps: vec![MapFill {
                name: "SOCKETS".to_owned(),
                entries: 3,
                capacity: 65536,
            }],
            programs_attached: 6,
            programs_expected: 6,
            live_sockets: 3,
            overflow: Totals::new(11, 12),
            wire_overflow: Totals::new(13, 14),
            quotas: vec![QuotaRatio {
                quota: "quota web day 1KiB".to_owned(),
                label: "web".to_owned(),
                interface: "*".to_owned(),
                period: "day",
                ratio: 0.5,
            }],
        };
        (labels, health)
    }

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
        let found: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        match found[0].value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "the test's values are whole and below 2^53"
                )]
                let whole = v as u64;
                whole
            }
            ref other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn prometheus_text_keeps_names_types_help_and_escapes_labels() {
        let (labels, health) = sample();
        let text = render(labels, health, Format::Prometheus);
        for line in [
            "# TYPE sockstats_tx_bytes_total counter\n",
            "# HELP sockstats_rx_bytes_total Payload bytes received (recvmsg return values), by label, interface and destination.\n",
            "sockstats_tx_bytes_total{label=\"web\",interface=\"we\\\"ird\\\\if\",destination=\"internet\"} 5\n",
            "sockstats_rx_bytes_total{label=\"web\",interface=\"we\\\"ird\\\\if\",destination=\"internet\"} 7\n",
            "sockstats_tx_bytes_total{label=\"web\",interface=\"lo\",destination=\"host\"} 1099511627776\n",
            "# TYPE sockstats_overflow_bytes_total counter\n",
            "sockstats_overflow_bytes_total{layer=\"wire\",direction=\"rx\"} 14\n",
            "sockstats_kernel_events_total{event=\"ringbuf_drops\"} 2\n",
            "# TYPE sockstats_map_entries gauge\n",
            "sockstats_map_capacity{map=\"SOCKETS\"} 65536\n",
            "# TYPE sockstats_programs_attached gauge\n",
            "sockstats_programs_attached 6\n",
            "sockstats_programs_expected 6\n",
            "sockstats_live_sockets 3\n",
            "# TYPE sockstats_quota_used_ratio gauge\n",
            "sockstats_quota_used_ratio{quota=\"quota web day 1KiB\",label=\"web\",interface=\"*\",period=\"day\"} 0.5\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
        assert!(text.ends_with('\n'));
        assert_eq!(
            Format::Prometheus.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn both_formats_parse_to_the_same_values() {
        let (labels, health) = sample();
        let classic = parse(&render(labels.clone(), health.clone(), Format::Prometheus));
        let open = render(labels, health, Format::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
        // OpenMetrics names the counter family without `_total`, its samples with it.
        assert!(
            open.contains("# TYPE sockstats_tx_bytes counter\n"),
            "{open}"
        );
        assert!(
            open.contains(
                "sockstats_tx_bytes_total{label=\"web\",interface=\"lo\",destination=\"host\"} 1099511627776\n"
            ),
            "{open}"
        );
        let open = parse(&open);
        for scrape in [&classic, &open] {
            let web_lo = [
                ("label", "web"),
                ("interface", "lo"),
                ("destination", "host"),
            ];
            assert_eq!(value(scrape, "sockstats_tx_bytes_total", &web_lo), 1 << 40);
            assert_eq!(value(scrape, "sockstats_rx_bytes_total", &web_lo), 3);
            // (prometheus-parse does not unescape label values: the escaped one is only
            // counted here, and checked as text in the test above.)
            let rx = scrape
                .samples
                .iter()
                .filter(|s| s.metric == "sockstats_rx_bytes_total");
            assert_eq!(rx.count(), 2);
            assert_eq!(value(scrape, "sockstats_wire_tx_packets_total", &web_lo), 0);
            assert_eq!(
                value(
                    scrape,
                    "sockstats_overflow_bytes_total",
                    &[("layer", "payload"), ("direction", "tx")]
                ),
                11
            );
            assert_eq!(
                value(scrape, "sockstats_map_entries", &[("map", "SOCKETS")]),
                3
            );
            assert_eq!(value(scrape, "sockstats_live_sockets", &[]), 3);
        }
        // The classic format's counters parse as counters (their TYPE line names them).
        assert!(classic
            .samples
            .iter()
            .filter(|s| s.metric.ends_with("_total"))
            .all(|s| matches!(s.value, prometheus_parse::Value::Counter(_))));
    }

    #[test]
    fn accept_header_picks_the_format() {
        for (accept, format) in [
            (None, Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("text/plain"), Format::Prometheus),
            (Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Format::Prometheus),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            // What Prometheus 2.x/3.x sends.
            (
                Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                Format::OpenMetrics,
            ),
            (Some("Application/OpenMetrics-Text; version=1.0.0"), Format::OpenMetrics),
            (Some("application/openmetrics-text;q=0, text/plain"), Format::Prometheus),
        ] {
            assert_eq!(Format::negotiate(accept), format, "{accept:?}");
        }
    }
}
