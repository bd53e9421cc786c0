//! The "current interface": the interface of the default route, read from /proc/net.
//!
//! IPv4's default route with the lowest metric wins; without one, IPv6's. Parsing is pure.
use std::fs;

/// `RTF_UP` in `/proc/net/route` and `/proc/net/ipv6_route` flags.
const RTF_UP: u32 = 0x0001;
/// `RTF_REJECT`: an unreachable route, not a way out.
const RTF_REJECT: u32 = 0x0200;

/// The default-route interface of this network namespace, if any.
#[must_use]
pub fn current_interface() -> Option<String> {
    let v4 = fs::read_to_string("/proc/net/route").ok();
    let v6 = fs::read_to_string("/proc/net/ipv6_route").ok();
    v4.as_deref()
        .and_then(default_interface_v4)
        .or_else(|| v6.as_deref().and_then(default_interface_v6))
}

/// From /proc/net/route: `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`.
#[must_use]
pub fn default_interface_v4(table: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
            let metric: u32 = fields.get(6)?.parse().ok()?;
            let is_default = *fields.get(1)? == "00000000" && *fields.get(7)? == "00000000";
            (is_default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0)
                .then(|| (metric, fields[0].to_owned()))
        })
        .min()
        .map(|(_, name)| name)
}

/// From `/proc/net/ipv6_route`: `dest dest_plen src src_plen next_hop metric refcnt use flags iface`.
#[must_use]
pub fn default_interface_v6(table: &str) -> Option<String> {
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 {
                return None;
            }
            let is_default = fields[0].bytes().all(|b| b == b'0') && fields[1] == "00";
            let metric = u32::from_str_radix(fields[5], 16).ok()?;
            let flags = u32::from_str_radix(fields[8], 16).ok()?;
            (is_default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && fields[9] != "lo")
                .then(|| (metric, fields[9].to_owned()))
        })
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
";

    #[test]
    fn lowest_metric_ipv4_default_wins() {
        assert_eq!(default_interface_v4(ROUTE).as_deref(), Some("eth0"));
        assert_eq!(
            default_interface_v4(
                ROUTE
                    .lines()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .as_str()
            ),
            None
        );
    }

    #[test]
    fn ipv6_default_skips_reject_routes_on_lo() {
        let table = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     ens3
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     ens4
";
        assert_eq!(default_interface_v6(table).as_deref(), Some("ens3"));
        assert_eq!(default_interface_v6(""), None);
    }
}
