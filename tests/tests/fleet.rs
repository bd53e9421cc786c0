//! The fleet view: Debian's Prometheus scrapes a live daemon and every query of the Grafana
//! dashboard (`dist/grafana/sockstats.json`), its variables' included, is evaluated through
//! Prometheus' HTTP API: each must parse and return series.
use std::{fs, path::PathBuf, time::Duration};

use serde_json::Value;
use sockstats_tests::{
    http::free_loopback_port,
    prometheus::Prometheus,
    traffic::{tcp_pair, tcp_send, udp_pair, udp_send},
    Harness,
};

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/grafana/sockstats.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// A dashboard query as Prometheus gets it from Grafana with every variable on "All" and a
/// 5-minute time range (`$__rate_interval` is at least four scrape intervals).
fn as_grafana_sends_it(expr: &str) -> String {
    expr.replace("$instance", ".*")
        .replace("$label", ".*")
        .replace("$interface", ".*")
        .replace("$__rate_interval", "30s")
        .replace("$__range", "5m")
}

/// Every panel's queries: (panel title, `PromQL`).
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            queries.push((
                panel["title"].as_str().unwrap_or("?").to_owned(),
                expr.to_owned(),
            ));
        }
    }
    queries
}

/// `label_values(SELECTOR, NAME)` of each query variable: (variable, selector, label name).
fn variable_queries(dashboard: &Value) -> Vec<(String, String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let query = v["query"]["query"].as_str().expect("a variable query");
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("not label_values(selector, name): {query}"));
            let (selector, name) = inner.rsplit_once(',').expect("selector, name");
            (
                v["name"].as_str().unwrap_or("?").to_owned(),
                selector.trim().to_owned(),
                name.trim().to_owned(),
            )
        })
        .collect()
}

#[test]
fn dashboard_queries_parse() {
    // No root, no Prometheus: the file's shape and the checks' own parsing.
    let dashboard = dashboard();
    let panels = panel_queries(&dashboard);
    assert!(panels.len() >= 10, "{panels:?}");
    let variables = variable_queries(&dashboard);
    let names: Vec<&str> = variables.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["instance", "label", "interface"]);
    assert!(panels.iter().all(|(_, expr)| expr.contains("$instance")));
}

#[test]
#[ignore = "needs root, the real kernel and Debian's prometheus: cargo xtask test"]
fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    let metrics_port = free_loopback_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let harness = Harness::start_with_args("fleet", &["--metrics", &metrics]);
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    let (a, b) = udp_pair(true);
    let mut control = daemon.client();
    control.label(&client, "fleet-tcp").expect("label");
    control.label(&a, "fleet-udp").expect("label");
    tcp_send(&client, &server, 100_000, 4096);
    let mut udp_bytes = udp_send(&a, &b, 50);

    // Declared after the harness: dropped (killed) first, before its cgroup goes.
    let prometheus = Prometheus::scraping(&metrics);
    let scraped = |p: &Prometheus, n: u32| {
        p.query("count_over_time(sockstats_programs_attached[1m])")
            .first()
            .and_then(|s| s["value"][1].as_str()?.parse::<u32>().ok())
            .is_some_and(|count| count >= n)
    };
    prometheus.wait_for(Duration::from_secs(30), "two scrapes", |p| scraped(p, 2));
    // More payload between scrapes, so that rates and increases are above zero.
    tcp_send(&client, &server, 50_000, 4096);
    tcp_send(&server, &client, 20_000, 4096);
    udp_bytes += udp_send(&a, &b, 50);
    prometheus.wait_for(Duration::from_secs(30), "four scrapes", |p| scraped(p, 4));

    let dashboard = dashboard();
    for (variable, selector, name) in variable_queries(&dashboard) {
        let selector = as_grafana_sends_it(&selector);
        let values = prometheus.api(
            &format!("/api/v1/label/{name}/values"),
            &[("match[]", &selector)],
        );
        let values = values.as_array().cloned().unwrap_or_default();
        assert!(
            !values.is_empty(),
            "variable {variable}: no values for {selector}"
        );
        if variable == "label" {
            assert!(values.iter().any(|v| v == "fleet-tcp"), "{values:?}");
        }
    }
    for (title, expr) in panel_queries(&dashboard) {
        let promql = as_grafana_sends_it(&expr);
        let series = prometheus.query(&promql);
        assert!(
            !series.is_empty(),
            "panel {title:?}: no series for {promql}"
        );
        if title == "Sent, by label" {
            let labels: Vec<&str> = series
                .iter()
                .filter_map(|s| s["metric"]["label"].as_str())
                .collect();
            assert!(
                labels.contains(&"fleet-tcp") && labels.contains(&"fleet-udp"),
                "{labels:?}"
            );
        }
    }
    // Prometheus read the daemon's counters as they are: the latest scrape is get's value.
    let latest = |label: &str| -> u64 {
        let series = prometheus.query(&format!(
            r#"sum(sockstats_tx_bytes_total{{label="{label}"}})"#
        ));
        series[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{label}: {series:?}"))
    };
    assert_eq!(latest("fleet-tcp"), 150_000);
    assert_eq!(daemon.stats("fleet-tcp").tx_bytes, 150_000);
    assert_eq!(latest("fleet-udp"), udp_bytes);
    assert_eq!(daemon.stats("fleet-udp").tx_bytes, udp_bytes);
    drop(prometheus);
}
