//! One reading of the counters ([`Exported`]) as an OTLP `ExportMetricsServiceRequest`, with
//! the OpenTelemetry project's generated types.
//!
//! Every counter is a monotonic `Sum` with cumulative temporality whose start time is when
//! the counters began (the pins of the kernel's account map were made); the health values
//! that are levels, not counts (map fill, programs, live sockets) are `Gauge`s. Attributes
//! follow the semantic conventions where they have a name (`network.io.direction` with
//! `transmit`/`receive`, `network.interface.name`, resource `host.name`, `service.name` and
//! `service.instance.id`)
//! and are `sockstats.*` otherwise. The table in the README maps each metric to its
//! Prometheus name.
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue},
    metrics::v1::{
        metric::Data, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum,
    },
    resource::v1::Resource,
};
use sockstats_common::{protocol::MapFill, IfaceCounters, Totals};

use crate::metrics::{collect::Exported, Health};

/// The semantic-convention attribute of the direction, and its two values.
pub const DIRECTION: &str = "network.io.direction";
pub const TRANSMIT: &str = "transmit";
pub const RECEIVE: &str = "receive";
/// The semantic-convention attribute of the interface's name.
pub const INTERFACE: &str = "network.interface.name";
/// sockstats' own attribute of the label (no convention names one).
pub const LABEL: &str = "sockstats.label";
/// sockstats' own attribute of the destination class or named network (no convention names
/// one).
pub const DESTINATION: &str = "sockstats.destination";

/// Who exports: the resource of every request.
#[derive(Debug, Clone)]
pub struct Source {
    /// `host.name`.
    pub host_name: String,
    /// When the counters began: every point's `start_time_unix_nano`.
    pub counters_since: SystemTime,
}

/// One per-(label, interface) counter: metric name, unit, description, tx and rx values.
type Pair = fn(&IfaceCounters) -> (u64, u64);
const PER_LABEL_INTERFACE: [(&str, &str, &str, Pair); 3] = [
    (
        "sockstats.payload.io",
        "By",
        "Payload bytes (sendmsg and recvmsg return values), by label and the interface the socket's packets used.",
        |c| (c.payload.tx_bytes, c.payload.rx_bytes),
    ),
    (
        "sockstats.wire.io",
        "By",
        "IP-layer bytes (headers, ACKs and retransmits included), by label and interface.",
        |c| (c.wire_bytes.tx_bytes, c.wire_bytes.rx_bytes),
    ),
    (
        "sockstats.wire.packets",
        "{packet}",
        "IP packets (GSO and GRO super-packets count as their segments), by label and interface.",
        |c| (c.wire_packets.tx_packets, c.wire_packets.rx_packets),
    ),
];

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

/// Points carry `as_int` (a signed 64-bit integer): a counter past `i64::MAX` (8 EiB) stays there.
fn int(value: u64) -> number_data_point::Value {
    number_data_point::Value::AsInt(i64::try_from(value).unwrap_or(i64::MAX))
}

/// Builds the points of one request: all share the start and the time of the reading.
struct Points {
    start: u64,
    time: u64,
}

impl Points {
    fn point(&self, attributes: &[(&str, &str)], value: u64) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
            start_time_unix_nano: self.start,
            time_unix_nano: self.time,
            value: Some(int(value)),
            ..NumberDataPoint::default()
        }
    }

    /// A gauge has no start time.
    fn level(&self, attributes: &[(&str, &str)], value: u64) -> NumberDataPoint {
        NumberDataPoint {
            start_time_unix_nano: 0,
            ..self.point(attributes, value)
        }
    }
}

fn metric(name: &str, unit: &str, description: &str, data: Data) -> Metric {
    Metric {
        name: name.to_owned(),
        description: description.to_owned(),
        unit: unit.to_owned(),
        data: Some(data),
        ..Metric::default()
    }
}

fn counter(name: &str, unit: &str, description: &str, points: Vec<NumberDataPoint>) -> Metric {
    let sum = Sum {
        data_points: points,
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
        is_monotonic: true,
    };
    metric(name, unit, description, Data::Sum(sum))
}

fn gauge(name: &str, unit: &str, description: &str, points: Vec<NumberDataPoint>) -> Metric {
    metric(
        name,
        unit,
        description,
        Data::Gauge(Gauge {
            data_points: points,
        }),
    )
}

fn directions(totals: Totals) -> [(&'static str, u64); 2] {
    [(TRANSMIT, totals.tx_bytes), (RECEIVE, totals.rx_bytes)]
}

/// The request for `exported`, read at `now`.
#[must_use]
pub fn request(
    exported: &Exported,
    source: &Source,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let at = Points {
        start: nanos(source.counters_since),
        time: nanos(now),
    };
    let mut metrics = per_label_interface(exported, &at);
    metrics.extend(health(&exported.health, &at));
    let resource = Resource {
        attributes: vec![
            attribute("service.name", "sockstatsd"),
            attribute("service.version", env!("CARGO_PKG_VERSION")),
            attribute("host.name", &source.host_name),
            // One daemon per host: what Prometheus exporters of a collector make `instance`.
            attribute("service.instance.id", &source.host_name),
        ],
        ..Resource::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "sockstatsd".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

/// The per-(label, interface) counters, one point per direction.
fn per_label_interface(exported: &Exported, at: &Points) -> Vec<Metric> {
    let mut metrics = Vec::new();
    for (name, unit, description, pair) in PER_LABEL_INTERFACE {
        let mut points = Vec::new();
        for (label, routes) in &exported.labels {
            for (route, counters) in routes {
                let (tx, rx) = pair(counters);
                for (direction, value) in [(TRANSMIT, tx), (RECEIVE, rx)] {
                    let attributes = [
                        (LABEL, label.as_str()),
                        (INTERFACE, route.interface.as_str()),
                        (DESTINATION, route.destination.as_str()),
                        (DIRECTION, direction),
                    ];
                    points.push(at.point(&attributes, value));
                }
            }
        }
        metrics.push(counter(name, unit, description, points));
    }
    metrics
}

/// How full one map is.
type Fill = fn(&MapFill) -> u64;

/// Overflow, kernel events, map fill, programs and live sockets.
fn health(health: &Health, at: &Points) -> Vec<Metric> {
    let mut metrics = Vec::new();
    let mut overflow = Vec::new();
    for (layer, totals) in [("payload", health.overflow), ("wire", health.wire_overflow)] {
        for (direction, value) in directions(totals) {
            overflow.push(at.point(&[("sockstats.layer", layer), (DIRECTION, direction)], value));
        }
    }
    metrics.push(counter(
        "sockstats.overflow.io",
        "By",
        "Bytes of sockets the kernel could not track because a map was full.",
        overflow,
    ));
    let events = health
        .counters
        .iter()
        .map(|(event, value)| at.point(&[("sockstats.event", event)], *value))
        .collect();
    metrics.push(counter(
        "sockstats.kernel.events",
        "{event}",
        "The kernel programs' failure and event counters.",
        events,
    ));
    let fill: [(&str, &str, Fill); 2] = [
        ("sockstats.map.entries", "Entries in each BPF map.", |m| {
            m.entries
        }),
        (
            "sockstats.map.capacity",
            "Capacity (max_entries) of each BPF map.",
            |m| m.capacity,
        ),
    ];
    for (name, description, value) in fill {
        let points = health
            .maps
            .iter()
            .map(|map| at.level(&[("sockstats.map", &map.name)], value(map)))
            .collect();
        metrics.push(gauge(name, "{entry}", description, points));
    }
    for (name, unit, description, value) in [
        (
            "sockstats.programs.attached",
            "{program}",
            "Kernel programs attached (of sockstats.programs.expected).",
            health.programs_attached as u64,
        ),
        (
            "sockstats.programs.expected",
            "{program}",
            "Kernel programs sockstats attaches.",
            health.programs_expected as u64,
        ),
        (
            "sockstats.sockets.live",
            "{socket}",
            "Inet sockets tracked in the kernel right now.",
            health.live_sockets,
        ),
    ] {
        metrics.push(gauge(name, unit, description, vec![at.level(&[], value)]));
    }
    metrics
}

/// The request's protobuf bytes, as OTLP/HTTP posts them.
#[must_use]
pub fn encode(exported: &Exported, source: &Source, now: SystemTime) -> bytes::Bytes {
    prost::Message::encode_to_vec(&request(exported, source, now)).into()
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use prost::Message as _;

    use super::*;

    fn exported() -> Exported {
        let route = |interface: &str, destination: &str| crate::ops::naming::NamedRoute {
            interface: interface.to_owned(),
            destination: destination.to_owned(),
        };
        let mut interfaces = BTreeMap::new();
        interfaces.insert(
            route("lo", "host"),
            IfaceCounters {
                payload: Totals::new(1 << 40, 3),
                wire_bytes: Totals::new(100, 200),
                ..IfaceCounters::default()
            },
        );
        interfaces.insert(
            route("eth0", "internet"),
            IfaceCounters {
                payload: Totals::new(5, 7),
                ..IfaceCounters::default()
            },
        );
        let mut labels = BTreeMap::new();
        labels.insert("web".to_owned(), interfaces);
        labels.insert("idle".to_owned(), BTreeMap::new());
        let mut counters = BTreeMap::new();
        counters.insert("ringbuf_drops".to_owned(), 2);
        Exported {
            labels,
            health: Health {
                counters,
                maps: vec![MapFill {
                    name: "RULES".to_owned(),
                    entries: 3,
                    capacity: 4096,
                }],
                programs_attached: 5,
                programs_expected: 6,
                live_sockets: 9,
                overflow: Totals::new(11, 12),
                wire_overflow: Totals::new(13, 14),
                quotas: Vec::new(),
            },
        }
    }

    fn string_attributes(attributes: &[KeyValue]) -> BTreeMap<String, String> {
        attributes
            .iter()
            .map(|kv| {
                let Some(any_value::Value::StringValue(value)) =
                    kv.value.as_ref().and_then(|v| v.value.clone())
                else {
                    panic!("{kv:?} is not a string");
                };
                (kv.key.clone(), value)
            })
            .collect()
    }

    fn decoded() -> (ExportMetricsServiceRequest, u64, u64) {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = start + Duration::from_millis(90_500);
        let source = Source {
            host_name: "web-1".to_owned(),
            counters_since: start,
        };
        let bytes = encode(&exported(), &source, now);
        let request = ExportMetricsServiceRequest::decode(bytes).expect("decodes");
        (request, nanos(start), nanos(now))
    }

    type Values = Vec<(BTreeMap<String, String>, i64)>;

    /// (attributes, value) of every point of metric `name`.
    fn points(request: &ExportMetricsServiceRequest, name: &str) -> (Metric, Values) {
        let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
        let metric = metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone();
        let points = match metric.data.as_ref().unwrap() {
            Data::Sum(sum) => &sum.data_points,
            Data::Gauge(gauge) => &gauge.data_points,
            other => panic!("{other:?}"),
        };
        let values = points
            .iter()
            .map(|p| {
                let Some(number_data_point::Value::AsInt(value)) = p.value else {
                    panic!("{p:?}")
                };
                (string_attributes(&p.attributes), value)
            })
            .collect();
        (metric, values)
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn counters_are_cumulative_monotonic_sums_with_convention_attributes() {
        let (request, start, now) = decoded();
        assert_eq!(request.resource_metrics.len(), 1);
        let resource = request.resource_metrics[0].resource.as_ref().unwrap();
        let resource = string_attributes(&resource.attributes);
        assert_eq!(resource["host.name"], "web-1");
        assert_eq!(resource["service.name"], "sockstatsd");
        assert_eq!(resource["service.instance.id"], "web-1");
        let (metric, values) = points(&request, "sockstats.payload.io");
        assert_eq!(metric.unit, "By");
        let Some(Data::Sum(sum)) = &metric.data else {
            panic!("{metric:?}")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        for point in &sum.data_points {
            assert_eq!(point.start_time_unix_nano, start);
            assert_eq!(point.time_unix_nano, now);
        }
        // The label without traffic has no interfaces, hence no points.
        assert_eq!(
            values,
            [
                (
                    attrs(&[
                        (LABEL, "web"),
                        (INTERFACE, "eth0"),
                        (DESTINATION, "internet"),
                        (DIRECTION, "transmit")
                    ]),
                    5
                ),
                (
                    attrs(&[
                        (LABEL, "web"),
                        (INTERFACE, "eth0"),
                        (DESTINATION, "internet"),
                        (DIRECTION, "receive")
                    ]),
                    7
                ),
                (
                    attrs(&[
                        (LABEL, "web"),
                        (INTERFACE, "lo"),
                        (DESTINATION, "host"),
                        (DIRECTION, "transmit")
                    ]),
                    1 << 40
                ),
                (
                    attrs(&[
                        (LABEL, "web"),
                        (INTERFACE, "lo"),
                        (DESTINATION, "host"),
                        (DIRECTION, "receive")
                    ]),
                    3
                ),
            ]
        );
        let (_, wire) = points(&request, "sockstats.wire.io");
        assert!(wire.contains(&(
            attrs(&[
                (LABEL, "web"),
                (INTERFACE, "lo"),
                (DESTINATION, "host"),
                (DIRECTION, "receive")
            ]),
            200
        )));
        let (_, packets) = points(&request, "sockstats.wire.packets");
        assert_eq!(packets.len(), 4);
    }

    #[test]
    fn overflow_events_and_health_are_exported_too() {
        let (request, _, _) = decoded();
        let (_, overflow) = points(&request, "sockstats.overflow.io");
        assert_eq!(
            overflow,
            [
                (
                    attrs(&[("sockstats.layer", "payload"), (DIRECTION, "transmit")]),
                    11
                ),
                (
                    attrs(&[("sockstats.layer", "payload"), (DIRECTION, "receive")]),
                    12
                ),
                (
                    attrs(&[("sockstats.layer", "wire"), (DIRECTION, "transmit")]),
                    13
                ),
                (
                    attrs(&[("sockstats.layer", "wire"), (DIRECTION, "receive")]),
                    14
                ),
            ]
        );
        let (_, events) = points(&request, "sockstats.kernel.events");
        assert_eq!(
            events,
            [(attrs(&[("sockstats.event", "ringbuf_drops")]), 2)]
        );
        let (entries, fill) = points(&request, "sockstats.map.entries");
        let Some(Data::Gauge(gauge)) = &entries.data else {
            panic!("{entries:?}")
        };
        assert_eq!(gauge.data_points[0].start_time_unix_nano, 0);
        assert_eq!(fill, [(attrs(&[("sockstats.map", "RULES")]), 3)]);
        assert_eq!(points(&request, "sockstats.map.capacity").1[0].1, 4096);
        assert_eq!(
            points(&request, "sockstats.programs.attached").1,
            [(BTreeMap::new(), 5)]
        );
        assert_eq!(points(&request, "sockstats.programs.expected").1[0].1, 6);
        assert_eq!(points(&request, "sockstats.sockets.live").1[0].1, 9);
    }

    #[test]
    fn counters_past_i64_stay_at_its_maximum() {
        assert_eq!(int(u64::MAX), number_data_point::Value::AsInt(i64::MAX));
        assert_eq!(int(7), number_data_point::Value::AsInt(7));
    }
}
