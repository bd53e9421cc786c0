//! The daemon's one config file (`/etc/sockstats/sockstats.conf`, `sockstatsd --config`): a
//! directive per line, `#` to the end of a line is a comment, like the rules file. It owns the
//! parsing and the defaults only; the history ([`crate::history`]) uses what it says.
//!
//! ```text
//! billing-day 15
//! metered rmnet* ww* pdp* usb0
//! retention 5min 2days
//! retention hour 90days
//! retention day 3years
//! retention month forever
//! quota backups interface=wwan0 month 10GiB warn=80%
//! quota-command /usr/local/bin/quota-alert
//! network vpc 10.0.0.0/16 fd00:10::/48
//! price internet tx 0.09
//! currency €
//! ```
//!
//! Directives are words followed by arguments. A line the parser does not understand stops
//! the daemon with `file:line: what is wrong; write … instead`. Each directive's lines are
//! parsed by its own module ([`quota`], [`destinations`]); this one dispatches, refuses a
//! setting given twice and holds the defaults.
use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use sockstats_common::protocol::Period;

pub mod destinations;
pub mod quota;

pub use destinations::Network;
pub use quota::Quota;

/// Read when `--config` is not given; it may be missing (then everything is the default).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/sockstats/sockstats.conf";

/// The globs `metered` has unless the file says otherwise: the cellular interface prefixes
/// Tailscale's sockstats treats as cellular (Android's `rmnet`, `ModemManager`'s `wwan`, `pdp`).
pub const DEFAULT_METERED: [&str; 3] = ["rmnet*", "ww*", "pdp*"];

/// The directives this version knows, for the advice on a line it does not.
const DIRECTIVES: &str =
    "billing-day, metered, retention, quota, quota-command, network, price, currency";

/// What the config file says (or the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The day of the month billing months start on, 1–31 (in a shorter month: its last day).
    pub billing_day: u8,
    /// Interface names (globs) counted as metered.
    pub metered: Metered,
    /// How long the buckets of each period are kept; `None` is forever.
    pub retention: BTreeMap<Period, Option<Duration>>,
    /// The `quota` lines, in file order.
    pub quotas: Vec<Quota>,
    /// The program run when a quota's threshold is crossed (`quota-command`).
    pub quota_command: Option<PathBuf>,
    /// The `network` lines, in file order.
    pub networks: Vec<Network>,
    /// The `price` lines: estimated prices per GiB by destination and direction.
    pub prices: destinations::Prices,
    /// The symbol printed with costs (`currency`).
    pub currency: String,
}

/// Interface name globs (`*`, `?`, `[…]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metered {
    patterns: Vec<glob::Pattern>,
}

impl Metered {
    /// The globs, as written.
    #[must_use]
    pub fn globs(&self) -> Vec<String> {
        self.patterns.iter().map(ToString::to_string).collect()
    }

    /// Does `interface` match one of the globs?
    #[must_use]
    pub fn matches(&self, interface: &str) -> bool {
        self.patterns
            .iter()
            .any(|pattern| pattern.matches(interface))
    }
}

/// The default retention of each period (the issue's: 2 days, 90 days, 3 years, forever).
#[must_use]
pub fn default_retention() -> BTreeMap<Period, Option<Duration>> {
    const DAY: u64 = 24 * 3600;
    BTreeMap::from([
        (Period::FiveMinutes, Some(Duration::from_secs(2 * DAY))),
        (Period::Hour, Some(Duration::from_secs(90 * DAY))),
        (Period::Day, Some(Duration::from_secs(3 * 365 * DAY + DAY))),
        (Period::Month, None),
    ])
}

impl Default for Config {
    fn default() -> Self {
        Self {
            billing_day: 1,
            metered: Metered {
                patterns: DEFAULT_METERED
                    .iter()
                    .map(|glob| glob::Pattern::new(glob).expect("the default globs parse"))
                    .collect(),
            },
            retention: default_retention(),
            quotas: Vec::new(),
            quota_command: None,
            networks: Vec::new(),
            prices: destinations::Prices::default(),
            currency: destinations::DEFAULT_CURRENCY.to_owned(),
        }
    }
}

/// Why the config file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}:{line}: {reason}; write {instead} instead", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
        /// What a correct line looks like.
        instead: String,
    },
    #[error("cannot read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
}

/// Reads `path` (`--config`), or [`DEFAULT_CONFIG_FILE`] when `None`; a missing default file
/// gives the defaults, a missing named one is an error. Returns the path read, if any.
pub fn read(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let (path, must_exist) = match path {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_CONFIG_FILE), false),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((parse(&text, path)?, Some(path.to_owned()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound && !must_exist => {
            Ok((Config::default(), None))
        }
        Err(error) => Err(ConfigError::Read {
            path: path.to_owned(),
            error,
        }),
    }
}

/// Parses the text of a config file read from `path` (named in errors).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut quota_lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut networks = destinations::NetworkLines::default();
    let mut prices = destinations::prices::PriceLines::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut words = line.split_whitespace();
        let Some(directive) = words.next() else {
            continue;
        };
        let at = At {
            path,
            number: index + 1,
            line,
        };
        let arguments: Vec<&str> = words.collect();
        // Each setting is set once: a second line for it is a mistake, not an override.
        let setting = match (directive, arguments.first()) {
            // Many of each; the same one twice is caught where it is parsed.
            ("quota" | "network" | "price", _) => None,
            ("retention", Some(period)) => Some(format!("retention {period}")),
            _ => Some(directive.to_owned()),
        };
        if let Some(setting) = setting {
            if let Some(first) = seen.insert(setting.clone(), at.number) {
                return Err(at.refuse(
                    format!("{setting} is set already on line {first}"),
                    &format!("one `{setting} …` line"),
                ));
            }
        }
        match directive {
            "billing-day" => config.billing_day = billing_day(&at, &arguments)?,
            "metered" => config.metered = metered(&at, &arguments)?,
            "retention" => {
                let (period, keep) = retention(&at, &arguments)?;
                config.retention.insert(period, keep);
            }
            "quota" => {
                let quota = quota::quota(&at, &arguments)?;
                if let Some(first) = quota_lines.insert(quota.text.clone(), at.number) {
                    return Err(at.refuse(
                        format!("quota {:?} is there already on line {first}", quota.text),
                        "one line per quota",
                    ));
                }
                config.quotas.push(quota);
            }
            "quota-command" => {
                config.quota_command = Some(quota::quota_command(&at, &arguments)?);
            }
            "network" => networks.add(&at, &arguments)?,
            "price" => prices.add(at, &arguments)?,
            "currency" => config.currency = destinations::prices::currency(&at, &arguments)?,
            other => {
                return Err(at.refuse(
                    format!("unknown directive {other:?}"),
                    &format!("one of {DIRECTIVES} (see the commented dist/sockstats.conf)"),
                ))
            }
        }
    }
    // A price may name a network of a later line: destinations are checked once all are read.
    config.prices = prices.finish(&networks)?;
    config.networks = networks.into_networks();
    Ok(config)
}

/// The line being parsed, for refusals.
#[derive(Clone, Copy)]
struct At<'a> {
    path: &'a Path,
    number: usize,
    line: &'a str,
}

impl At<'_> {
    fn refuse(&self, reason: String, instead: &str) -> ConfigError {
        ConfigError::Line {
            path: self.path.to_owned(),
            line: self.number,
            reason,
            instead: instead.to_owned(),
        }
    }
}

fn billing_day(at: &At<'_>, arguments: &[&str]) -> Result<u8, ConfigError> {
    const INSTEAD: &str = "`billing-day N` with N from 1 to 31, e.g. `billing-day 15`";
    let [day] = arguments[..] else {
        return Err(at.refuse(
            format!("billing-day takes one day of the month, got {:?}", at.line),
            INSTEAD,
        ));
    };
    day.parse()
        .ok()
        .filter(|day| (1..=31).contains(day))
        .ok_or_else(|| at.refuse(format!("{day:?} is not a day of the month"), INSTEAD))
}

fn metered(at: &At<'_>, arguments: &[&str]) -> Result<Metered, ConfigError> {
    const INSTEAD: &str = "`metered GLOB…` with interface names or globs, e.g. `metered wwan0 rmnet*`, or `metered none`";
    let patterns = match arguments {
        [] => return Err(at.refuse("metered names no interface".to_owned(), INSTEAD)),
        ["none"] => Vec::new(),
        _ => arguments
            .iter()
            .map(|glob| {
                glob::Pattern::new(glob).map_err(|error| {
                    at.refuse(format!("{glob:?} is not a glob: {}", error.msg), INSTEAD)
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Metered { patterns })
}

fn retention(at: &At<'_>, arguments: &[&str]) -> Result<(Period, Option<Duration>), ConfigError> {
    const INSTEAD: &str =
        "`retention 5min|hour|day|month DURATION|forever`, e.g. `retention hour 90days`";
    let [period, keep] = arguments[..] else {
        return Err(at.refuse(
            format!("retention takes a period and a duration, got {:?}", at.line),
            INSTEAD,
        ));
    };
    let period = Period::from_name(period).ok_or_else(|| {
        at.refuse(
            format!("{period:?} is not a period (5min, hour, day or month)"),
            INSTEAD,
        )
    })?;
    if keep == "forever" {
        return Ok((period, None));
    }
    let duration = humantime::parse_duration(keep)
        .map_err(|error| at.refuse(format!("{keep:?} is not a duration: {error}"), INSTEAD))?;
    let bucket = Duration::from_secs(nominal_seconds(period));
    if duration < bucket {
        return Err(at.refuse(
            format!("{keep:?} is shorter than one {} bucket", period.name()),
            &format!(
                "a duration of at least {} for `retention {}`",
                humantime::format_duration(bucket),
                period.name()
            ),
        ));
    }
    Ok((period, Some(duration)))
}

/// The length of a bucket of `period` in seconds (a month as 28 days: the shortest).
const fn nominal_seconds(period: Period) -> u64 {
    match period {
        Period::FiveMinutes => 300,
        Period::Hour => 3600,
        Period::Day => 86_400,
        Period::Month => 28 * 86_400,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn parsed(text: &str) -> Result<Config, String> {
        parse(text, Path::new("/etc/sockstats/sockstats.conf")).map_err(|error| error.to_string())
    }

    pub(crate) fn refusal(text: &str) -> String {
        parsed(text).unwrap_err()
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = parsed("# nothing\n\n   \n").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.billing_day, 1);
        assert_eq!(config.metered.globs(), ["rmnet*", "ww*", "pdp*"]);
        assert!(config.metered.matches("wwan0") && config.metered.matches("rmnet_data0"));
        assert!(!config.metered.matches("eth0") && !config.metered.matches("lo"));
        assert_eq!(
            config.retention[&Period::FiveMinutes],
            Some(Duration::from_secs(2 * 86_400))
        );
        assert_eq!(config.retention[&Period::Month], None);
    }

    #[test]
    fn reads_every_directive() {
        let config = parsed(
            "billing-day 15   # the plan renews on the 15th\n\
             metered usb0 wwan? # tethering\n\
             retention 5min 1day\n\
             retention month 10years\n\
             retention hour forever\n",
        )
        .unwrap();
        assert_eq!(config.billing_day, 15);
        assert_eq!(config.metered.globs(), ["usb0", "wwan?"]);
        assert!(config.metered.matches("wwan1") && !config.metered.matches("rmnet0"));
        assert_eq!(
            config.retention[&Period::FiveMinutes],
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(config.retention[&Period::Hour], None);
        assert_eq!(
            config.retention[&Period::Day],
            default_retention()[&Period::Day]
        );
        assert!(config.retention[&Period::Month].is_some());
        assert!(parsed("metered none").unwrap().metered.globs().is_empty());
    }

    #[test]
    fn refuses_bad_billing_days() {
        assert_eq!(
            refusal("\nbilling-day 32"),
            "/etc/sockstats/sockstats.conf:2: \"32\" is not a day of the month; write `billing-day N` with N from 1 to 31, e.g. `billing-day 15` instead"
        );
        assert!(refusal("billing-day 0").contains(":1: \"0\" is not a day"));
        assert!(refusal("billing-day fifteenth").contains("is not a day of the month"));
        assert!(refusal("billing-day").contains("billing-day takes one day of the month"));
        assert!(refusal("billing-day 1 2").contains("billing-day takes one day"));
        assert_eq!(
            refusal("billing-day 1\nbilling-day 2"),
            "/etc/sockstats/sockstats.conf:2: billing-day is set already on line 1; write one `billing-day …` line instead"
        );
    }

    #[test]
    fn refuses_bad_metered_lines() {
        assert!(
            refusal("metered").contains(":1: metered names no interface; write `metered GLOB…`")
        );
        assert!(refusal("metered wwan[").contains("\"wwan[\" is not a glob"));
        assert!(refusal("metered a\nmetered b")
            .contains(":2: metered is set already on line 1; write one `metered …` line instead"));
    }

    #[test]
    fn refuses_bad_retention_lines() {
        assert!(refusal("retention week 1y").contains(
            ":1: \"week\" is not a period (5min, hour, day or month); write `retention 5min|hour|day|month DURATION|forever`"
        ));
        assert!(refusal("retention hour").contains("retention takes a period and a duration"));
        assert!(refusal("retention hour soon").contains("\"soon\" is not a duration"));
        assert_eq!(
            refusal("retention day 1h"),
            "/etc/sockstats/sockstats.conf:1: \"1h\" is shorter than one day bucket; write a duration of at least 1day for `retention day` instead"
        );
        assert!(refusal("retention hour 1d\nretention hour 2d").contains(
            ":2: retention hour is set already on line 1; write one `retention hour …` line"
        ));
    }

    #[test]
    fn refuses_unknown_directives() {
        assert_eq!(
            refusal("# comment\nbiling-day 5"),
            "/etc/sockstats/sockstats.conf:2: unknown directive \"biling-day\"; write one of billing-day, metered, retention, quota, quota-command, network, price, currency (see the commented dist/sockstats.conf) instead"
        );
    }

    #[test]
    fn a_missing_default_file_is_the_defaults_a_missing_named_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("sockstats.conf");
        let error = read(Some(&missing)).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot read config file {}", missing.display())),
            "{error}"
        );
        std::fs::write(&missing, "billing-day 9\n").unwrap();
        let (config, read_from) = read(Some(&missing)).unwrap();
        assert_eq!((config.billing_day, read_from), (9, Some(missing)));
    }

    #[test]
    fn the_shipped_file_parses_to_the_defaults() {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/sockstats.conf");
        let text = std::fs::read_to_string(shipped).unwrap();
        assert_eq!(parsed(&text).unwrap(), Config::default());
    }
}
