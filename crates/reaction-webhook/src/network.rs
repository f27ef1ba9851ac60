//! IP networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`), as written in the
//! allow-list and used by the table of blocked ranges.
//!
//! A network is stored with its host bits cleared, so `10.1.2.3/8` and
//! `10.0.0.0/8` are the same network and print the same way.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A block of IPv4 or IPv6 addresses: a network address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The network of `address` with `prefix` leading bits; `None` when the
    /// prefix is longer than the address (32 bits for IPv4, 128 for IPv6).
    pub fn new(address: IpAddr, prefix: u8) -> Option<Self> {
        let address = match address {
            IpAddr::V4(address) => {
                IpAddr::V4(Ipv4Addr::from_bits(address.to_bits() & v4_mask(prefix)?))
            }
            IpAddr::V6(address) => {
                IpAddr::V6(Ipv6Addr::from_bits(address.to_bits() & v6_mask(prefix)?))
            }
        };
        Some(Self { address, prefix })
    }

    /// The network holding `address` alone (`/32` or `/128`).
    pub fn single(address: IpAddr) -> Self {
        let prefix = if address.is_ipv4() { 32 } else { 128 };
        Self { address, prefix }
    }

    /// The first address of the network.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The number of leading bits that all addresses of the network share.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` belongs to the network. An IPv4 address never belongs to
    /// an IPv6 network or the other way round: embedded forms such as
    /// `::ffff:127.0.0.1` are the classification's business, not the network's.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = v4_mask(self.prefix).expect("the prefix was checked on construction");
                address.to_bits() & mask == network.to_bits()
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = v6_mask(self.prefix).expect("the prefix was checked on construction");
                address.to_bits() & mask == network.to_bits()
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix)
    }
}

/// Why a text is not a network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseNetworkError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    #[error("`{0}` is not an IP address")]
    Address(String),
    /// The part after `/` is not a number of bits that fits the address.
    #[error("`{prefix}` is not a prefix length between 0 and {max}")]
    Prefix {
        /// The prefix as written.
        prefix: String,
        /// The longest prefix the address family allows.
        max: u8,
    },
}

impl FromStr for IpNetwork {
    type Err = ParseNetworkError;

    /// Parses `address/prefix`, or a bare address as a single-address network.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| ParseNetworkError::Address(address.to_owned()))?;

        let Some(prefix) = prefix else {
            return Ok(Self::single(address));
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let invalid_prefix = || ParseNetworkError::Prefix {
            prefix: prefix.to_owned(),
            max,
        };
        let bits: u8 = prefix.parse().map_err(|_| invalid_prefix())?;
        Self::new(address, bits).ok_or_else(invalid_prefix)
    }
}

fn v4_mask(prefix: u8) -> Option<u32> {
    match prefix {
        0 => Some(0),
        1..=32 => Some(u32::MAX << (32 - prefix)),
        _ => None,
    }
}

fn v6_mask(prefix: u8) -> Option<u128> {
    match prefix {
        0 => Some(0),
        1..=128 => Some(u128::MAX << (128 - prefix)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_normalizes_networks() {
        assert_eq!(network("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(network("127.0.0.1").to_string(), "127.0.0.1/32");
        assert_eq!(network("::1").to_string(), "::1/128");
        assert_eq!(network("[::1]").to_string(), "::1/128");
        assert_eq!(network("fd12:3456::1/16").to_string(), "fd12::/16");
        assert_eq!(network("0.0.0.0/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn rejects_bad_addresses_and_prefixes() {
        assert!(matches!(
            "10.0.0/8".parse::<IpNetwork>(),
            Err(ParseNetworkError::Address(_))
        ));
        assert_eq!(
            "10.0.0.0/33".parse::<IpNetwork>(),
            Err(ParseNetworkError::Prefix {
                prefix: "33".into(),
                max: 32
            })
        );
        assert!("::/129".parse::<IpNetwork>().is_err());
        assert!("10.0.0.0/x".parse::<IpNetwork>().is_err());
        assert!("10.0.0.0/".parse::<IpNetwork>().is_err());
        assert!("example.com/8".parse::<IpNetwork>().is_err());
    }

    #[test]
    fn contains_only_addresses_of_its_family_and_range() {
        let private = network("10.0.0.0/8");
        assert!(private.contains(ip("10.255.0.1")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(!private.contains(ip("::ffff:10.0.0.1")));
        assert!(network("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(network("fe80::/10").contains(ip("febf::1")));
        assert!(!network("fe80::/10").contains(ip("fec0::1")));
        assert!(network("::1/128").contains(ip("::1")));
        assert!(!network("::1/128").contains(ip("::2")));
    }
}
