//! Which addresses a webhook may reach: the table of blocked ranges and the
//! operator's allow-list, applied to every address before a connection.
//!
//! By default a webhook may reach public unicast addresses only. Everything a
//! request forger would aim at is blocked: loopback, the private and CGNAT
//! ranges, link-local (with the cloud metadata service at 169.254.169.254),
//! unique-local IPv6, multicast, broadcast, the unspecified address and the
//! documentation, benchmarking and reserved ranges.
//!
//! IPv6 forms that carry an IPv4 address are judged by that address: an
//! IPv4-mapped address (`::ffff:127.0.0.1`) or a NAT64 one
//! (`64:ff9b::7f00:1`) is blocked when its IPv4 address is. IPv4-compatible
//! addresses (`::127.0.0.1`, deprecated since RFC 4291), 6to4 and Teredo are
//! blocked outright, and so is every IPv6 address outside the global unicast
//! block `2000::/3`, so a range assigned later is blocked until someone
//! decides otherwise.
//!
//! The allow-list lifts the block for exact host names (whatever they resolve
//! to) and for networks; it never widens beyond what it names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::allow::AllowRule;
use crate::network::IpNetwork;

/// A special-purpose range an address fell in, for the error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockedRange {
    /// What the range is for, e.g. `loopback`.
    pub name: &'static str,
    /// The range in CIDR notation.
    pub cidr: &'static str,
    /// The IPv4 address an IPv6 address embeds, when that is what was blocked.
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for BlockedRange {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(inner) => write!(
                formatter,
                "embedded {inner} is {} ({})",
                self.name, self.cidr
            ),
            None => write!(formatter, "{} ({})", self.name, self.cidr),
        }
    }
}

/// IPv4 ranges a webhook may not reach: (network, prefix length, name, CIDR).
const BLOCKED_V4: &[(u32, u8, &str, &str)] = &[
    (0x0000_0000, 8, "\"this network\"", "0.0.0.0/8"),
    (0x0a00_0000, 8, "private", "10.0.0.0/8"),
    (0x6440_0000, 10, "carrier-grade NAT", "100.64.0.0/10"),
    (0x7f00_0000, 8, "loopback", "127.0.0.0/8"),
    (0xa9fe_0000, 16, "link-local", "169.254.0.0/16"),
    (0xac10_0000, 12, "private", "172.16.0.0/12"),
    (0xc000_0000, 24, "IETF protocol assignments", "192.0.0.0/24"),
    (0xc000_0200, 24, "documentation", "192.0.2.0/24"),
    (0xc058_6300, 24, "6to4 relay anycast", "192.88.99.0/24"),
    (0xc0a8_0000, 16, "private", "192.168.0.0/16"),
    (0xc612_0000, 15, "benchmarking", "198.18.0.0/15"),
    (0xc633_6400, 24, "documentation", "198.51.100.0/24"),
    (0xcb00_7100, 24, "documentation", "203.0.113.0/24"),
    (0xe000_0000, 4, "multicast", "224.0.0.0/4"),
    (0xf000_0000, 4, "reserved or broadcast", "240.0.0.0/4"),
];

/// IPv6 ranges a webhook may not reach, checked in order after the forms that
/// embed an IPv4 address.
const BLOCKED_V6: &[(u128, u8, &str, &str)] = &[
    (0, 128, "unspecified", "::/128"),
    (1, 128, "loopback", "::1/128"),
    (0, 96, "IPv4-compatible (deprecated)", "::/96"),
    (
        0x0064_ff9b_0001 << 80,
        48,
        "local-use NAT64",
        "64:ff9b:1::/48",
    ),
    (0x0100 << 112, 64, "discard-only", "100::/64"),
    (
        0x2001 << 112,
        23,
        "IETF protocol assignments (incl. Teredo)",
        "2001::/23",
    ),
    (0x2001_0db8 << 96, 32, "documentation", "2001:db8::/32"),
    (0x2002 << 112, 16, "6to4", "2002::/16"),
    (0x3fff << 112, 20, "documentation", "3fff::/20"),
    (0xfc00 << 112, 7, "unique-local", "fc00::/7"),
    (0xfe80 << 112, 10, "link-local", "fe80::/10"),
    (0xfec0 << 112, 10, "site-local (deprecated)", "fec0::/10"),
    (0xff00 << 112, 8, "multicast", "ff00::/8"),
];

/// The one IPv6 block holding global unicast addresses.
const GLOBAL_UNICAST_V6: u128 = 0x2000 << 112;

/// The range that keeps a webhook from reaching `address`, if any.
pub(crate) fn blocked_range(address: IpAddr) -> Option<BlockedRange> {
    match address {
        IpAddr::V4(address) => blocked_v4(address),
        IpAddr::V6(address) => blocked_v6(address),
    }
}

/// What the allow-list lifts, ready to be asked about hosts and addresses.
#[derive(Clone, Debug, Default)]
pub(crate) struct DestinationPolicy {
    hosts: Vec<String>,
    networks: Vec<IpNetwork>,
}

impl DestinationPolicy {
    /// The policy of an allow-list.
    pub fn new(rules: &[AllowRule]) -> Self {
        let mut policy = Self::default();
        for rule in rules {
            match rule {
                AllowRule::Host(host) => policy.hosts.push(host.clone()),
                AllowRule::Network(network) => policy.networks.push(*network),
            }
        }
        policy
    }

    /// Whether `host` is named by the allow-list, so that any address it
    /// resolves to may be reached.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        self.hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Checks that `address` may be reached: it is public, or the allow-list
    /// names a network holding it.
    pub fn check_address(&self, address: IpAddr) -> Result<(), BlockedRange> {
        let Some(range) = blocked_range(address) else {
            return Ok(());
        };
        // An IPv4-mapped address reaches the IPv4 address it maps, so a network
        // that allows one allows the other.
        let canonical = address.to_canonical();
        let is_allowed = self
            .networks
            .iter()
            .any(|network| network.contains(address) || network.contains(canonical));
        if is_allowed { Ok(()) } else { Err(range) }
    }
}

fn blocked_v4(address: Ipv4Addr) -> Option<BlockedRange> {
    let bits = address.to_bits();
    BLOCKED_V4
        .iter()
        .find(|(network, prefix, _, _)| bits & (u32::MAX << (32 - prefix)) == *network)
        .map(|&(_, _, name, cidr)| BlockedRange {
            name,
            cidr,
            embedded: None,
        })
}

fn blocked_v6(address: Ipv6Addr) -> Option<BlockedRange> {
    if let Some(inner) = embedded_v4(address) {
        return blocked_v4(inner).map(|range| BlockedRange {
            embedded: Some(inner),
            ..range
        });
    }

    let bits = address.to_bits();
    let listed = BLOCKED_V6
        .iter()
        .find(|(network, prefix, _, _)| bits & (u128::MAX << (128 - prefix)) == *network);
    if let Some(&(_, _, name, cidr)) = listed {
        return Some(BlockedRange {
            name,
            cidr,
            embedded: None,
        });
    }
    if bits & (u128::MAX << 125) != GLOBAL_UNICAST_V6 {
        return Some(BlockedRange {
            name: "not global unicast",
            cidr: "outside 2000::/3",
            embedded: None,
        });
    }
    None
}

/// The IPv4 address that an IPv4-mapped (`::ffff:0:0/96`) or NAT64
/// (`64:ff9b::/96`) address reaches.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    const MAPPED: u128 = 0xffff << 32;
    const NAT64: u128 = 0x0064_ff9b << 96;

    let bits = address.to_bits();
    let prefix = bits & !u128::from(u32::MAX);
    if prefix == MAPPED || prefix == NAT64 {
        Some(Ipv4Addr::from_bits(bits as u32))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_every_special_purpose_range() {
        let blocked = [
            ("0.0.0.0", "\"this network\""),
            ("0.1.2.3", "\"this network\""),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF protocol assignments"),
            ("192.0.2.10", "documentation"),
            ("192.88.99.1", "6to4 relay anycast"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved or broadcast"),
            ("255.255.255.255", "reserved or broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::7f00:1", "IPv4-compatible (deprecated)"),
            ("::808:808", "IPv4-compatible (deprecated)"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("100::1", "discard-only"),
            ("2001::1", "IETF protocol assignments (incl. Teredo)"),
            ("2001:db8::1", "documentation"),
            ("2002:7f00:1::1", "6to4"),
            ("3fff::1", "documentation"),
            ("fc00::1", "unique-local"),
            ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local (deprecated)"),
            ("ff02::1", "multicast"),
            ("5f00::1", "not global unicast"),
            ("4000::1", "not global unicast"),
        ];
        for (address, name) in blocked {
            let range = blocked_range(ip(address));
            assert_eq!(
                range.map(|range| range.name),
                Some(name),
                "{address} should be blocked as {name}"
            );
            assert_eq!(range.unwrap().embedded, None, "{address}");
        }
    }

    #[test]
    fn judges_mapped_and_nat64_addresses_by_their_ipv4_address() {
        let embedded = [
            ("::ffff:127.0.0.1", "127.0.0.1", "loopback"),
            ("::ffff:7f00:1", "127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "169.254.169.254", "link-local"),
            ("::ffff:0.0.0.0", "0.0.0.0", "\"this network\""),
            ("64:ff9b::7f00:1", "127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254", "link-local"),
            ("64:ff9b::192.168.0.1", "192.168.0.1", "private"),
        ];
        for (address, inner, name) in embedded {
            let range = blocked_range(ip(address)).unwrap_or_else(|| panic!("{address}"));
            assert_eq!(range.name, name, "{address}");
            assert_eq!(range.embedded, Some(inner.parse().unwrap()), "{address}");
        }
        assert_eq!(blocked_range(ip("::ffff:8.8.8.8")), None);
        assert_eq!(blocked_range(ip("64:ff9b::808:808")), None);
    }

    #[test]
    fn lets_public_addresses_through() {
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4007:80e::200e",
            "2001:200::1",
            "2001:db9::1",
            "2003::1",
            "3ffe::1",
        ];
        for address in public {
            assert_eq!(blocked_range(ip(address)), None, "{address} is public");
        }
    }

    #[test]
    fn names_the_range_in_the_message() {
        assert_eq!(
            blocked_range(ip("169.254.169.254")).unwrap().to_string(),
            "link-local (169.254.0.0/16)"
        );
        assert_eq!(
            blocked_range(ip("::ffff:127.0.0.1")).unwrap().to_string(),
            "embedded 127.0.0.1 is loopback (127.0.0.0/8)"
        );
    }

    #[test]
    fn allow_list_lifts_exactly_what_it_names() {
        let policy = DestinationPolicy::new(&[
            AllowRule::Network("127.0.0.1".parse().unwrap()),
            AllowRule::Network("10.0.0.0/8".parse().unwrap()),
            AllowRule::Host("hooks.internal".into()),
        ]);
        assert_eq!(policy.check_address(ip("127.0.0.1")), Ok(()));
        assert_eq!(policy.check_address(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(policy.check_address(ip("10.20.30.40")), Ok(()));
        assert_eq!(policy.check_address(ip("8.8.8.8")), Ok(()));
        assert!(policy.check_address(ip("127.0.0.2")).is_err());
        assert!(policy.check_address(ip("::1")).is_err());
        assert!(policy.check_address(ip("192.168.0.1")).is_err());
        assert!(policy.check_address(ip("169.254.169.254")).is_err());
        // NAT64 reaches a gateway, not the embedded address itself.
        assert!(policy.check_address(ip("64:ff9b::7f00:1")).is_err());

        assert!(policy.allows_host("hooks.internal"));
        assert!(policy.allows_host("HOOKS.internal."));
        assert!(!policy.allows_host("evil.hooks.internal"));
        assert!(!policy.allows_host("hooks.internal.evil"));
        assert!(!policy.allows_host("localhost"));
    }

    #[test]
    fn empty_policy_blocks_loopback_and_allows_no_host() {
        let policy = DestinationPolicy::default();
        assert!(policy.check_address(ip("127.0.0.1")).is_err());
        assert!(!policy.allows_host("localhost"));
        assert_eq!(policy.check_address(ip("93.184.215.14")), Ok(()));
    }
}
