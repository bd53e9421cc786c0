//! `get_destinations`: each label's payload split by the destination of its remote addresses
//! (the classes and the config's named networks), by interface too if asked, with the
//! estimated cost of the config's prices.
use std::collections::{BTreeMap, BTreeSet};

use sockstats_common::protocol::{
    CostEstimate, DestinationBytes, DestinationStats, GetDestinationsReply,
};

use super::{
    naming::{add_bytes as add, named_totals},
    Refusal,
};
use crate::{
    config::destinations::{Direction, BUILTIN_DESTINATIONS},
    daemon::state::Daemon,
};

pub fn get_destinations(
    daemon: &Daemon,
    interfaces: bool,
    cost: bool,
) -> Result<GetDestinationsReply, Refusal> {
    let config = &daemon.info().config;
    if cost && config.prices.is_empty() {
        return Err(Refusal::NoPrices);
    }
    let named = named_totals(daemon)?;
    let mut destinations: BTreeSet<String> =
        BUILTIN_DESTINATIONS.iter().map(|&n| n.to_owned()).collect();
    destinations.extend(config.networks.iter().map(|network| network.name.clone()));
    let mut reply = GetDestinationsReply::default();
    let mut total_cost = 0.0;
    for (label, routes) in &named.labels {
        let mut stats = DestinationStats::default();
        for (route, counters) in routes {
            add(
                &mut stats.tx_bytes_by_destination,
                &route.destination,
                counters.payload.tx_bytes,
            );
            add(
                &mut stats.rx_bytes_by_destination,
                &route.destination,
                counters.payload.rx_bytes,
            );
            add(
                &mut stats.wire_tx_bytes_by_destination,
                &route.destination,
                counters.wire_bytes.tx_bytes,
            );
            add(
                &mut stats.wire_rx_bytes_by_destination,
                &route.destination,
                counters.wire_bytes.rx_bytes,
            );
            if interfaces {
                let by = stats
                    .by_interface
                    .entry(route.interface.clone())
                    .or_insert_with(DestinationBytes::default);
                add(
                    &mut by.tx_bytes_by_destination,
                    &route.destination,
                    counters.payload.tx_bytes,
                );
                add(
                    &mut by.rx_bytes_by_destination,
                    &route.destination,
                    counters.payload.rx_bytes,
                );
            }
            destinations.insert(route.destination.clone());
        }
        if cost {
            let estimate = config.prices.estimate(
                &stats.tx_bytes_by_destination,
                &stats.rx_bytes_by_destination,
            );
            total_cost += estimate;
            stats.cost = Some(estimate);
        }
        reply.stats.insert(label.clone(), stats);
    }
    if cost {
        reply.cost = Some(CostEstimate {
            currency: config.currency.clone(),
            total: total_cost,
            prices: prices_by_destination(&config.prices, &destinations),
        });
    }
    reply.destinations = destinations.into_iter().collect();
    Ok(reply)
}

/// The config's prices of `destinations`: destination → `tx`/`rx` → price per GiB.
fn prices_by_destination(
    prices: &crate::config::destinations::Prices,
    destinations: &BTreeSet<String>,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for destination in destinations {
        for (direction, name) in [(Direction::Tx, "tx"), (Direction::Rx, "rx")] {
            if let Some(price) = prices.per_gib(destination, direction) {
                out.entry(destination.clone())
                    .or_default()
                    .insert(name.to_owned(), price);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sockstats_common::{
        AccountKey, IfaceCounters, Totals, DESTINATION_INTERNET, DESTINATION_PRIVATE,
        DESTINATION_UNKNOWN, FIRST_NAMED_DESTINATION, OTHER_IFINDEX,
    };

    use super::*;
    use crate::ops::testing::{Fixture, HOST_NETNS};

    const PRICED: &str =
        "network vpc 10.0.0.0/16\nprice internet tx 0.5\nprice vpc rx 2\ncurrency €\n";

    fn with_config(text: &str) -> Fixture {
        let config = crate::config::parse(text, Path::new("test.conf")).expect("a good config");
        Fixture::with_info(move |info| info.config = config)
    }

    fn add(test: &Fixture, ifindex: u32, destination: u32, tx: u64, rx: u64) {
        test.with_kernel(|kernel| {
            kernel
                .snapshot
                .accounts
                .entry(AccountKey {
                    label: 1,
                    ifindex,
                    netns_cookie: if ifindex == OTHER_IFINDEX {
                        0
                    } else {
                        HOST_NETNS
                    },
                    destination,
                    pad: 0,
                })
                .or_insert_with(IfaceCounters::default)
                .add(&IfaceCounters {
                    payload: Totals::new(tx, rx),
                    wire_bytes: Totals::new(tx + 40, rx + 40),
                    ..IfaceCounters::default()
                });
        });
    }

    #[test]
    fn splits_each_label_by_destination_and_interface() {
        let test = with_config(PRICED);
        test.daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        add(&test, 2, DESTINATION_INTERNET, 1000, 10);
        add(&test, 2, FIRST_NAMED_DESTINATION, 20, 300);
        add(&test, 1, DESTINATION_PRIVATE, 5, 0);
        add(&test, OTHER_IFINDEX, DESTINATION_UNKNOWN, 7, 7);
        let reply = get_destinations(&test.daemon, true, false).unwrap();
        let web = &reply.stats["web"];
        let map = |entries: &[(&str, u64)]| -> BTreeMap<String, u64> {
            entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        assert_eq!(
            web.tx_bytes_by_destination,
            map(&[
                (":unknown", 7),
                ("internet", 1000),
                ("private", 5),
                ("vpc", 20)
            ])
        );
        assert_eq!(
            web.rx_bytes_by_destination,
            map(&[(":unknown", 7), ("internet", 10), ("vpc", 300)])
        );
        assert_eq!(
            web.by_interface["eth0"].tx_bytes_by_destination,
            map(&[("internet", 1000), ("vpc", 20)])
        );
        assert_eq!(
            web.by_interface["lo"].tx_bytes_by_destination,
            map(&[("private", 5)])
        );
        assert_eq!(
            web.wire_tx_bytes_by_destination,
            map(&[
                (":unknown", 47),
                ("internet", 1040),
                ("private", 45),
                ("vpc", 60)
            ])
        );
        assert_eq!(web.cost, None);
        assert_eq!(reply.cost, None);
        assert_eq!(
            reply.destinations,
            [":unknown", "host", "internet", "private", "vpc"]
        );
        // Without interfaces, no split by them.
        let plain = get_destinations(&test.daemon, false, false).unwrap();
        assert!(plain.stats["web"].by_interface.is_empty());
    }

    #[test]
    fn the_cost_is_bytes_per_gib_times_the_price_of_destination_and_direction() {
        let test = with_config(PRICED);
        test.daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        let gib = 1 << 30;
        add(&test, 2, DESTINATION_INTERNET, gib, gib);
        add(&test, 2, FIRST_NAMED_DESTINATION, gib, gib / 4);
        let reply = get_destinations(&test.daemon, false, true).unwrap();
        // internet: 1 GiB sent at 0.5 (received unpriced); vpc: ¼ GiB received at 2.
        assert_eq!(reply.stats["web"].cost, Some(1.0));
        assert_eq!(reply.stats["unlabeled"].cost, Some(0.0));
        let cost = reply.cost.unwrap();
        assert_eq!(cost.currency, "€");
        assert!((cost.total - 1.0).abs() < f64::EPSILON);
        assert!((cost.prices["internet"]["tx"] - 0.5).abs() < f64::EPSILON);
        assert!((cost.prices["vpc"]["rx"] - 2.0).abs() < f64::EPSILON);
        assert!(!cost.prices.contains_key("private"));
    }

    #[test]
    fn a_cost_without_prices_is_refused_with_what_to_write() {
        let test = with_config("");
        let refusal = get_destinations(&test.daemon, false, true).unwrap_err();
        assert_eq!(
            refusal.code(),
            sockstats_common::protocol::ErrorCode::BadRequest
        );
        assert!(
            refusal.to_string().contains("`price internet tx 0.09`"),
            "{refusal}"
        );
        // Without --cost the same daemon answers.
        assert!(get_destinations(&test.daemon, false, false).is_ok());
    }
}
