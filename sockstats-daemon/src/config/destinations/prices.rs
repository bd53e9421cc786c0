//! `price` and `currency` lines of the config file, and the estimate they give:
//!
//! ```text
//! price DEST tx|rx AMOUNT
//! currency SYMBOL
//! ```
//!
//! AMOUNT is per GiB (2^30 bytes), a plain decimal (`0.09`, `0`, `12.5`): no sign, no
//! exponent, so what is written is what is meant. Prices are estimates the user gives; nothing
//! here knows a provider's real tariff.
use std::collections::BTreeMap;

use super::{
    super::{At, ConfigError},
    NetworkLines,
};

/// The symbol printed with costs when the file has no `currency` line.
pub const DEFAULT_CURRENCY: &str = "$";

/// The longest currency symbol, in characters.
const MAX_CURRENCY_LENGTH: usize = 8;

/// What a `price` line looks like, for the advice on a bad one.
const INSTEAD: &str =
    "`price DEST tx|rx AMOUNT` with AMOUNT per GiB, e.g. `price internet tx 0.09`";

/// Bytes in a GiB, the unit prices are per.
const GIB: f64 = 1_073_741_824.0;

/// Which bytes a price is for: sent to (tx) or received from (rx) the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Tx,
    Rx,
}

impl Direction {
    /// `tx` or `rx`, as the config file writes it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Tx => "tx",
            Direction::Rx => "rx",
        }
    }
}

/// The `price` lines: an estimated price per GiB for each (destination, direction) priced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prices {
    tx: BTreeMap<String, f64>,
    rx: BTreeMap<String, f64>,
}

impl Prices {
    /// The price per GiB of bytes in `direction` to or from `destination`, if the file gives one.
    #[must_use]
    pub fn per_gib(&self, destination: &str, direction: Direction) -> Option<f64> {
        self.side(direction).get(destination).copied()
    }

    /// Does the file price nothing?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty() && self.rx.is_empty()
    }

    /// Estimated cost of bytes per destination (tx and rx maps as `get --destinations` has
    /// them): sum of bytes / 2^30 * price; destinations without a price cost 0.
    #[must_use]
    pub fn estimate(&self, tx: &BTreeMap<String, u64>, rx: &BTreeMap<String, u64>) -> f64 {
        self.cost(tx, Direction::Tx) + self.cost(rx, Direction::Rx)
    }

    fn cost(&self, bytes: &BTreeMap<String, u64>, direction: Direction) -> f64 {
        bytes
            .iter()
            .filter_map(|(destination, &bytes)| {
                Some(gib(bytes) * self.per_gib(destination, direction)?)
            })
            .sum()
    }

    fn side(&self, direction: Direction) -> &BTreeMap<String, f64> {
        match direction {
            Direction::Tx => &self.tx,
            Direction::Rx => &self.rx,
        }
    }
}

/// `bytes` in GiB.
#[expect(
    clippy::cast_precision_loss,
    reason = "exact up to 2^53 bytes (8 PiB); beyond, the estimate is off by less than a byte in 2^52"
)]
fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB
}

/// The `price` lines read so far, each with its line: a destination is only known to be
/// wrong once every `network` line is read (a price may come before its network).
#[derive(Default)]
pub(in crate::config) struct PriceLines<'a> {
    prices: Prices,
    /// (destination, direction) to its line.
    lines: BTreeMap<(String, Direction), At<'a>>,
}

impl<'a> PriceLines<'a> {
    /// Parses the arguments of a `price` line.
    pub(in crate::config) fn add(
        &mut self,
        at: At<'a>,
        arguments: &[&str],
    ) -> Result<(), ConfigError> {
        let [destination, direction, amount] = arguments[..] else {
            return Err(at.refuse(
                format!(
                    "price takes a destination, tx or rx and an amount, got {:?}",
                    at.line
                ),
                INSTEAD,
            ));
        };
        let direction = match direction {
            "tx" => Direction::Tx,
            "rx" => Direction::Rx,
            _ => {
                return Err(at.refuse(
                    format!("{direction:?} is not a direction"),
                    "`tx` (bytes sent to the destination) or `rx` (bytes received from it)",
                ))
            }
        };
        let per_gib = amount_of(&at, amount)?;
        let key = (destination.to_owned(), direction);
        if let Some(first) = self.lines.get(&key) {
            let setting = format!("price {destination} {}", direction.name());
            return Err(at.refuse(
                format!("{setting} is set already on line {}", first.number),
                &format!("one `{setting} …` line"),
            ));
        }
        let side = match direction {
            Direction::Tx => &mut self.prices.tx,
            Direction::Rx => &mut self.prices.rx,
        };
        side.insert(destination.to_owned(), per_gib);
        self.lines.insert(key, at);
        Ok(())
    }

    /// The prices, once every destination they name is known to be a class or a network.
    pub(in crate::config) fn finish(self, networks: &NetworkLines) -> Result<Prices, ConfigError> {
        let unknown = self
            .lines
            .iter()
            .filter(|((destination, _), _)| !networks.is_destination(destination))
            .min_by_key(|(_, at)| at.number);
        if let Some(((destination, _), at)) = unknown {
            return Err(at.refuse(
                format!("price names an unknown destination {destination:?}"),
                &format!(
                    "one of {} (a built-in class or a network of this file) as DEST",
                    networks.destinations().join(", ")
                ),
            ));
        }
        Ok(self.prices)
    }
}

/// A price per GiB: a plain decimal, 0 or more.
fn amount_of(at: &At<'_>, amount: &str) -> Result<f64, ConfigError> {
    const AMOUNT: &str = "a price per GiB as a plain decimal: digits with at most one `.` between digits, e.g. `0.09`, `0` or `12.5` (no sign, no exponent)";
    if amount.strip_prefix('-').is_some_and(is_plain_decimal) {
        return Err(at.refuse(
            format!("{amount:?} is negative"),
            "a price of 0 or more per GiB",
        ));
    }
    if !is_plain_decimal(amount) {
        return Err(at.refuse(format!("{amount:?} is not a plain decimal"), AMOUNT));
    }
    amount
        .parse::<f64>()
        .ok()
        .filter(|price| price.is_finite())
        .ok_or_else(|| at.refuse(format!("{amount:?} is too large a price"), AMOUNT))
}

/// Digits, optionally one `.` with digits on both sides.
fn is_plain_decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    [whole, fraction]
        .iter()
        .all(|digits| !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()))
}

/// Parses the arguments of a `currency` line.
pub(in crate::config) fn currency(at: &At<'_>, arguments: &[&str]) -> Result<String, ConfigError> {
    const INSTEAD: &str = "`currency SYMBOL` with a symbol of 1 to 8 characters and no spaces, e.g. `currency €` or `currency USD`";
    let [symbol] = arguments[..] else {
        return Err(at.refuse(
            format!("currency takes one symbol, got {:?}", at.line),
            INSTEAD,
        ));
    };
    if symbol.chars().count() > MAX_CURRENCY_LENGTH {
        return Err(at.refuse(
            format!("currency symbol {symbol:?} is longer than {MAX_CURRENCY_LENGTH} characters"),
            INSTEAD,
        ));
    }
    if symbol.chars().any(char::is_control) {
        return Err(at.refuse(
            format!("currency symbol {symbol:?} has a control character"),
            INSTEAD,
        ));
    }
    Ok(symbol.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        tests::{parsed, refusal},
        Config,
    };

    const GIB_BYTES: u64 = 1 << 30;

    fn bytes(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
        entries
            .iter()
            .map(|&(destination, bytes)| (destination.to_owned(), bytes))
            .collect()
    }

    #[test]
    fn reads_price_and_currency_lines() {
        let config = parsed(
            "price internet tx 0.09  # example\n\
             price vpc rx 0\n\
             price s3 tx 12.50\n\
             network vpc 10.0.0.0/16\n\
             network s3 52.216.0.0/15\n\
             price private tx 0.01\n\
             currency €\n",
        )
        .unwrap();
        let prices = &config.prices;
        assert!(!prices.is_empty());
        assert_eq!(prices.per_gib("internet", Direction::Tx), Some(0.09));
        assert_eq!(prices.per_gib("internet", Direction::Rx), None);
        assert_eq!(prices.per_gib("vpc", Direction::Rx), Some(0.0));
        assert_eq!(prices.per_gib("vpc", Direction::Tx), None);
        assert_eq!(prices.per_gib("s3", Direction::Tx), Some(12.5));
        assert_eq!(prices.per_gib("private", Direction::Tx), Some(0.01));
        assert_eq!(prices.per_gib("host", Direction::Tx), None);
        assert_eq!(config.currency, "€");
        assert_eq!(parsed("currency USD").unwrap().currency, "USD");
        assert_eq!(parsed("currency CHF/GiB").unwrap().currency, "CHF/GiB");
    }

    #[test]
    #[expect(
        clippy::float_cmp,
        reason = "these byte counts are whole or half GiB and the sums round nothing: the estimate is the very number"
    )]
    fn the_defaults_price_nothing_in_dollars() {
        let config = Config::default();
        assert!(config.prices.is_empty());
        assert_eq!(config.currency, "$");
        assert_eq!(
            config
                .prices
                .estimate(&bytes(&[("internet", GIB_BYTES)]), &bytes(&[])),
            0.0
        );
    }

    #[test]
    #[expect(
        clippy::float_cmp,
        reason = "these byte counts are whole or half GiB and the sums round nothing: the estimate is the very number"
    )]
    fn estimates_exactly_on_simple_numbers() {
        let config = parsed(
            "price internet tx 0.09\nprice internet rx 0.5\nprice vpc tx 0.25\nnetwork vpc 10.0.0.0/8",
        )
        .unwrap();
        let prices = &config.prices;
        assert_eq!(
            prices.estimate(&bytes(&[("internet", GIB_BYTES)]), &bytes(&[])),
            0.09
        );
        assert_eq!(
            prices.estimate(&bytes(&[]), &bytes(&[("internet", 3 * GIB_BYTES)])),
            1.5
        );
        assert_eq!(
            prices.estimate(&bytes(&[("internet", GIB_BYTES / 2)]), &bytes(&[])),
            0.045
        );
        // 2 GiB × 0.25 to vpc, 1 GiB × 0.5 from the internet; vpc's rx, host and private are
        // not priced and cost nothing.
        assert_eq!(
            prices.estimate(
                &bytes(&[
                    ("vpc", 2 * GIB_BYTES),
                    ("host", 7 * GIB_BYTES),
                    ("private", 1)
                ]),
                &bytes(&[("internet", GIB_BYTES), ("vpc", 9 * GIB_BYTES)])
            ),
            1.0
        );
        assert_eq!(
            prices.estimate(
                &bytes(&[("host", GIB_BYTES), ("elsewhere", GIB_BYTES)]),
                &bytes(&[("private", GIB_BYTES)])
            ),
            0.0
        );
    }

    #[test]
    fn refuses_bad_price_lines() {
        let instead = "write `price DEST tx|rx AMOUNT` with AMOUNT per GiB, e.g. `price internet tx 0.09` instead";
        assert_eq!(
            refusal("price internet 0.09"),
            format!("/etc/sockstats/sockstats.conf:1: price takes a destination, tx or rx and an amount, got \"price internet 0.09\"; {instead}")
        );
        assert_eq!(
            refusal("\nprice internet tx 0.09 USD"),
            format!("/etc/sockstats/sockstats.conf:2: price takes a destination, tx or rx and an amount, got \"price internet tx 0.09 USD\"; {instead}")
        );
        assert_eq!(
            refusal("price internet out 0.09"),
            "/etc/sockstats/sockstats.conf:1: \"out\" is not a direction; write `tx` (bytes sent to the destination) or `rx` (bytes received from it) instead"
        );
    }

    #[test]
    fn refuses_amounts_that_are_not_plain_decimals() {
        for bad in [
            "1e-3", ".5", "5.", "1.2.3", "0x10", "+1", "inf", "NaN", "1,5", "$0.09", "0.09/GiB",
        ] {
            assert_eq!(
                refusal(&format!("price internet tx {bad}")),
                format!("/etc/sockstats/sockstats.conf:1: {bad:?} is not a plain decimal; write a price per GiB as a plain decimal: digits with at most one `.` between digits, e.g. `0.09`, `0` or `12.5` (no sign, no exponent) instead"),
                "{bad}"
            );
        }
        assert_eq!(
            refusal("price internet rx -0.09"),
            "/etc/sockstats/sockstats.conf:1: \"-0.09\" is negative; write a price of 0 or more per GiB instead"
        );
        assert!(refusal("price internet rx -x").contains("\"-x\" is not a plain decimal"));
        assert!(refusal(&format!("price internet rx {}", "9".repeat(400)))
            .contains("is too large a price; write a price per GiB as a plain decimal"));
    }

    #[test]
    fn refuses_a_price_twice() {
        assert_eq!(
            refusal("price internet tx 0.09\nprice internet rx 0\nprice internet tx 0.05"),
            "/etc/sockstats/sockstats.conf:3: price internet tx is set already on line 1; write one `price internet tx …` line instead"
        );
    }

    #[test]
    fn refuses_a_price_for_an_unknown_destination() {
        assert_eq!(
            refusal("network vpc 10.0.0.0/16\nprice vcp tx 0.01\nnetwork s3 52.216.0.0/15\nprice zzz rx 1"),
            "/etc/sockstats/sockstats.conf:2: price names an unknown destination \"vcp\"; write one of host, private, internet, vpc, s3 (a built-in class or a network of this file) as DEST instead"
        );
        assert!(refusal("price Internet tx 0.09")
            .contains(":1: price names an unknown destination \"Internet\"; write one of host, private, internet (a built-in"));
    }

    #[test]
    fn refuses_bad_currencies() {
        let instead = "write `currency SYMBOL` with a symbol of 1 to 8 characters and no spaces, e.g. `currency €` or `currency USD` instead";
        assert_eq!(
            refusal("currency"),
            format!("/etc/sockstats/sockstats.conf:1: currency takes one symbol, got \"currency\"; {instead}")
        );
        assert_eq!(
            refusal("currency US dollar"),
            format!("/etc/sockstats/sockstats.conf:1: currency takes one symbol, got \"currency US dollar\"; {instead}")
        );
        assert_eq!(
            refusal("currency dollars€€"),
            format!("/etc/sockstats/sockstats.conf:1: currency symbol \"dollars€€\" is longer than 8 characters; {instead}")
        );
        assert_eq!(parsed("currency €€€€€€€€").unwrap().currency, "€€€€€€€€");
        assert_eq!(
            refusal("currency \u{7}"),
            format!("/etc/sockstats/sockstats.conf:1: currency symbol \"\\u{{7}}\" has a control character; {instead}")
        );
        assert_eq!(
            refusal("currency €\ncurrency $"),
            "/etc/sockstats/sockstats.conf:2: currency is set already on line 1; write one `currency …` line instead"
        );
    }
}
