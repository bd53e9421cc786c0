//! `quota` and `quota-command` lines of the config file:
//!
//! ```text
//! quota LABEL|* [interface=GLOB] [metered] hour|day|month LIMIT [warn=N%] [direction=tx|rx|both]
//! quota-command /ABSOLUTE/PATH
//! ```
//!
//! The words after the label come in any order; the period and the limit are required, each
//! once. What a quota measures and when it fires is [`crate::history::quota`]'s.
use std::path::PathBuf;

use sockstats_common::{label_name, protocol::Period};

use super::{At, ConfigError};

/// What a `quota` line looks like, for the advice on a bad one.
const INSTEAD: &str = "`quota LABEL|* [interface=GLOB] [metered] hour|day|month LIMIT [warn=N%] [direction=tx|rx|both]`, e.g. `quota backups interface=wwan0 month 10GiB warn=80%`";

/// The warning threshold when a quota line names none.
pub const DEFAULT_WARN_PERCENT: u8 = 80;

/// Which payload bytes count against a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Tx,
    Rx,
    Both,
}

impl Direction {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Tx => "tx",
            Direction::Rx => "rx",
            Direction::Both => "both",
        }
    }
}

/// One `quota` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// The line as written, words joined by one space: the quota's name everywhere (the
    /// `quotas` op, the metric, `SOCKSTATS_QUOTA`, the database).
    pub text: String,
    /// The label, or `None` for `*` (every label, `unlabeled` included, together).
    pub label: Option<String>,
    /// Only interfaces this glob matches.
    pub interface: Option<glob::Pattern>,
    /// Only metered interfaces (the config's `metered` globs).
    pub metered: bool,
    /// Hour, day or billing month.
    pub period: Period,
    /// Bytes.
    pub limit: u64,
    /// The warning threshold, percent of the limit (1–99).
    pub warn_percent: u8,
    pub direction: Direction,
}

impl Quota {
    /// The label as shown: the label or `*`.
    #[must_use]
    pub fn label_name(&self) -> &str {
        self.label.as_deref().unwrap_or("*")
    }

    /// The interface glob as written, or `*`.
    #[must_use]
    pub fn interface_name(&self) -> String {
        self.interface
            .as_ref()
            .map_or_else(|| "*".to_owned(), ToString::to_string)
    }
}

/// Parses the arguments of a `quota` line.
pub(super) fn quota(at: &At<'_>, arguments: &[&str]) -> Result<Quota, ConfigError> {
    let Some((label, rest)) = arguments.split_first() else {
        return Err(at.refuse("quota names no label".to_owned(), INSTEAD));
    };
    let label = label_of(at, label)?;
    let mut interface = None;
    let mut metered = false;
    let mut period = None;
    let mut limit = None;
    let mut warn = None;
    let mut direction = None;
    for word in rest {
        let once = |what: &str, set: bool| {
            if set {
                Err(at.refuse(format!("quota has {what} twice"), INSTEAD))
            } else {
                Ok(())
            }
        };
        if let Some(glob) = word.strip_prefix("interface=") {
            once("interface=", interface.is_some())?;
            interface = Some(glob::Pattern::new(glob).map_err(|error| {
                at.refuse(
                    format!("{glob:?} is not an interface name or glob: {}", error.msg),
                    "`interface=NAME` or `interface=GLOB`, e.g. `interface=wwan0` or `interface=ww*`",
                )
            })?);
        } else if *word == "metered" {
            once("metered", metered)?;
            metered = true;
        } else if let Some(percent) = word.strip_prefix("warn=") {
            once("warn=", warn.is_some())?;
            warn = Some(warn_percent(at, word, percent)?);
        } else if let Some(name) = word.strip_prefix("direction=") {
            once("direction=", direction.is_some())?;
            direction = Some(direction_of(at, name)?);
        } else if let Some(named) = Period::from_name(word) {
            once("a period", period.is_some())?;
            if named == Period::FiveMinutes {
                return Err(at.refuse(
                    "a quota cannot be per 5min".to_owned(),
                    "`hour`, `day` or `month` (the billing month) as the period",
                ));
            }
            period = Some(named);
        } else if word.starts_with(|c: char| c.is_ascii_digit()) {
            once("a limit", limit.is_some())?;
            limit = Some(bytes(word).ok_or_else(|| {
                at.refuse(
                    format!("{word:?} is not an amount of bytes"),
                    "a limit like `500MB`, `10GiB` or `1.5TB` (B, KB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB of 1024)",
                )
            })?);
        } else {
            return Err(at.refuse(format!("quota does not know {word:?}"), INSTEAD));
        }
    }
    let Some(period) = period else {
        return Err(at.refuse("quota has no period".to_owned(), INSTEAD));
    };
    let Some(limit) = limit else {
        return Err(at.refuse("quota has no limit".to_owned(), INSTEAD));
    };
    if limit == 0 {
        return Err(at.refuse(
            "a quota's limit must be more than 0 bytes".to_owned(),
            "a limit of at least 1B",
        ));
    }
    Ok(Quota {
        text: at.line.split_whitespace().collect::<Vec<_>>().join(" "),
        label,
        interface,
        metered,
        period,
        limit,
        warn_percent: warn.unwrap_or(DEFAULT_WARN_PERCENT),
        direction: direction.unwrap_or(Direction::Both),
    })
}

/// The label of a quota line: a label name, or `None` for `*`.
fn label_of(at: &At<'_>, label: &str) -> Result<Option<String>, ConfigError> {
    if label == "*" {
        return Ok(None);
    }
    match label_name::validate(label) {
        // `unlabeled` cannot be registered, but its bytes are history like any label's.
        Ok(()) | Err(label_name::LabelNameError::Reserved) => Ok(Some(label.to_owned())),
        Err(error) => Err(at.refuse(
            format!("{label:?} is not a label: {error}"),
            "a label name or `*` (every label) first",
        )),
    }
}

/// `N%` of `warn=N%` (the whole `word` for the refusal).
fn warn_percent(at: &At<'_>, word: &str, percent: &str) -> Result<u8, ConfigError> {
    percent
        .strip_suffix('%')
        .and_then(|n| n.parse::<u8>().ok())
        .filter(|n| (1..=99).contains(n))
        .ok_or_else(|| {
            at.refuse(
                format!("{word:?} is not a warning threshold"),
                "`warn=N%` with N from 1 to 99, e.g. `warn=80%`",
            )
        })
}

fn direction_of(at: &At<'_>, name: &str) -> Result<Direction, ConfigError> {
    match name {
        "tx" => Ok(Direction::Tx),
        "rx" => Ok(Direction::Rx),
        "both" => Ok(Direction::Both),
        _ => Err(at.refuse(
            format!("{name:?} is not a direction"),
            "`direction=tx`, `direction=rx` or `direction=both`",
        )),
    }
}

/// Bytes written as a number (integer or decimal) and a unit: `B`, SI `KB`…`TB`, IEC
/// `KiB`…`TiB`. A fraction of a byte is dropped. `None` if it is not that or overflows.
#[must_use]
pub fn bytes(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = text.split_at(split);
    let multiplier: u128 = match unit {
        "B" => 1,
        "KB" => 1000,
        "MB" => 1000_u128.pow(2),
        "GB" => 1000_u128.pow(3),
        "TB" => 1000_u128.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = 10_u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    u64::try_from(digits.checked_mul(multiplier)? / scale).ok()
}

/// Parses the arguments of a `quota-command` line.
pub(super) fn quota_command(at: &At<'_>, arguments: &[&str]) -> Result<PathBuf, ConfigError> {
    const INSTEAD: &str = "`quota-command /ABSOLUTE/PATH` naming one executable, run without a shell and without arguments, e.g. `quota-command /usr/local/bin/quota-alert`";
    let [path] = arguments[..] else {
        return Err(at.refuse(
            format!(
                "quota-command takes one program (no arguments, no shell), got {:?}",
                at.line
            ),
            INSTEAD,
        ));
    };
    if !path.starts_with('/') {
        return Err(at.refuse(format!("{path:?} is not an absolute path"), INSTEAD));
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{parsed, refusal};

    #[test]
    fn reads_quota_lines() {
        let config = parsed(
            "quota backups   interface=wwan0 month 10GiB warn=90%  # the plan\n\
             quota * metered day 1.5GB direction=rx\n\
             quota unlabeled hour 100B\n\
             quota-command /usr/local/bin/alert\n",
        )
        .unwrap();
        let [backups, all, unlabeled] = &config.quotas[..] else {
            panic!("{:?}", config.quotas);
        };
        assert_eq!(
            backups.text,
            "quota backups interface=wwan0 month 10GiB warn=90%"
        );
        assert_eq!(backups.label.as_deref(), Some("backups"));
        assert_eq!(backups.interface_name(), "wwan0");
        assert_eq!(
            (backups.period, backups.limit, backups.warn_percent),
            (Period::Month, 10 << 30, 90)
        );
        assert_eq!(backups.direction, Direction::Both);
        assert!(!backups.metered);
        assert_eq!(
            (all.label_name(), all.interface_name()),
            ("*", "*".to_owned())
        );
        assert!(all.metered);
        assert_eq!((all.period, all.limit), (Period::Day, 1_500_000_000));
        assert_eq!((all.warn_percent, all.direction), (80, Direction::Rx));
        assert_eq!((unlabeled.period, unlabeled.limit), (Period::Hour, 100));
        assert_eq!(
            config.quota_command.as_deref(),
            Some(std::path::Path::new("/usr/local/bin/alert"))
        );
    }

    #[test]
    fn reads_byte_units_exactly() {
        assert_eq!(bytes("1B"), Some(1));
        assert_eq!(bytes("2KB"), Some(2000));
        assert_eq!(bytes("2KiB"), Some(2048));
        assert_eq!(bytes("3MiB"), Some(3 << 20));
        assert_eq!(bytes("1.5GiB"), Some(3 << 29));
        assert_eq!(bytes("1TB"), Some(1_000_000_000_000));
        assert_eq!(bytes("2TiB"), Some(2 << 40));
        assert_eq!(bytes("0.001KB"), Some(1));
        for bad in [
            "10",
            "10gb",
            "GiB",
            "1..5GB",
            "1.GB",
            ".5GB",
            "1e3B",
            "99999999TiB",
        ] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn refuses_each_bad_quota_line() {
        let instead = "write `quota LABEL|* [interface=GLOB] [metered] hour|day|month LIMIT [warn=N%] [direction=tx|rx|both]`, e.g. `quota backups interface=wwan0 month 10GiB warn=80%` instead";
        assert_eq!(
            refusal("\nquota"),
            format!("/etc/sockstats/sockstats.conf:2: quota names no label; {instead}")
        );
        assert_eq!(
            refusal("quota backups 10GiB"),
            format!("/etc/sockstats/sockstats.conf:1: quota has no period; {instead}")
        );
        assert!(
            refusal("quota backups month").contains(":1: quota has no limit; write `quota LABEL")
        );
        assert!(refusal("quota backups month day 1GB").contains("quota has a period twice"));
        assert!(refusal("quota backups month 1GB 2GB").contains("quota has a limit twice"));
        assert!(
            refusal("quota backups metered metered month 1GB").contains("quota has metered twice")
        );
        assert!(refusal("quota b interface=a interface=b month 1GB")
            .contains("quota has interface= twice"));
        assert!(refusal("quota b month 1GB warn=1% warn=2%").contains("quota has warn= twice"));
        assert!(refusal("quota b month 1GB direction=tx direction=rx")
            .contains("quota has direction= twice"));
        assert!(refusal("quota back!ups month 1GB").contains(
            ":1: \"back!ups\" is not a label: label name has '!' at position 4; only [A-Za-z0-9._:/-] are allowed; write a label name or `*` (every label) first instead"
        ));
        assert!(refusal("quota backups month 10GiB weekly")
            .contains(":1: quota does not know \"weekly\"; write `quota LABEL"));
        assert!(refusal("quota backups 5min 1GB").contains(
            "a quota cannot be per 5min; write `hour`, `day` or `month` (the billing month) as the period instead"
        ));
        assert!(refusal("quota backups month 10gb").contains(
            "\"10gb\" is not an amount of bytes; write a limit like `500MB`, `10GiB` or `1.5TB`"
        ));
        assert!(refusal("quota backups month 0B").contains(
            "a quota's limit must be more than 0 bytes; write a limit of at least 1B instead"
        ));
        for warn in ["warn=80", "warn=0%", "warn=100%", "warn=x%"] {
            assert!(
                refusal(&format!("quota backups month 1GB {warn}")).contains(&format!(
                    "\"{warn}\" is not a warning threshold; write `warn=N%` with N from 1 to 99"
                )),
                "{warn}"
            );
        }
        assert!(refusal("quota backups month 1GB direction=up").contains(
            "\"up\" is not a direction; write `direction=tx`, `direction=rx` or `direction=both` instead"
        ));
        assert!(refusal("quota backups interface=wwan[ month 1GB")
            .contains("\"wwan[\" is not an interface name or glob"));
        assert!(refusal("quota backups month 1GB\nquota backups  month  1GB").contains(
            ":2: quota \"quota backups month 1GB\" is there already on line 1; write one line per quota instead"
        ));
    }

    #[test]
    fn refuses_bad_quota_commands() {
        assert!(refusal("quota-command alert.sh").contains(
            ":1: \"alert.sh\" is not an absolute path; write `quota-command /ABSOLUTE/PATH`"
        ));
        assert!(refusal("quota-command /bin/sh -c 'x'")
            .contains("quota-command takes one program (no arguments, no shell)"));
        assert!(refusal("quota-command").contains("quota-command takes one program"));
        assert!(refusal("quota-command /a\nquota-command /b")
            .contains(":2: quota-command is set already on line 1"));
    }
}
