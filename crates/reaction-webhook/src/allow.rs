//! The allow-list (`AREA_WEBHOOK_ALLOW`): hosts and networks that webhooks may
//! reach even though they are loopback, private or otherwise blocked.
//!
//! The list is comma-separated. Each entry is an IPv4 or IPv6 address
//! (`127.0.0.1`, `::1`, `[::1]`), a network in CIDR notation (`10.0.0.0/8`,
//! `fd00::/8`) or an exact host name (`localhost`, `hooks.internal`). A host
//! name allows that host whatever it resolves to, and nothing else: no
//! subdomain, no other name resolving to the same address, no literal address.
//! Ports, schemes and wildcards are rejected rather than half-understood.

use std::fmt;
use std::str::FromStr;

use crate::network::IpNetwork;

/// One entry of the allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowRule {
    /// An exact host name, lowercase and in its ASCII (punycode) form.
    Host(String),
    /// A network; a single address is a `/32` or `/128` network.
    Network(IpNetwork),
}

impl fmt::Display for AllowRule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host(host) => formatter.write_str(host),
            Self::Network(network) => network.fmt(formatter),
        }
    }
}

/// Why an allow-list entry was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}` is not a host name, IP address or CIDR network: {reason}")]
pub struct ParseAllowRuleError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for AllowRule {
    type Err = ParseAllowRuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entry = text.trim();
        let invalid = |reason: &str| ParseAllowRuleError {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        if entry.is_empty() {
            return Err(invalid("it is empty"));
        }
        if entry.contains("://") {
            return Err(invalid("write the host alone, without a scheme"));
        }
        if entry.contains('/') {
            return entry
                .parse()
                .map(Self::Network)
                .map_err(|error: crate::network::ParseNetworkError| invalid(&error.to_string()));
        }
        if let Ok(network) = entry.parse::<IpNetwork>() {
            return Ok(Self::Network(network));
        }
        if entry.contains(':') {
            return Err(invalid("ports are not supported; allow the host itself"));
        }
        if entry.contains('*') {
            return Err(invalid("wildcards are not supported; name each host"));
        }

        let host = entry.strip_suffix('.').unwrap_or(entry);
        match url::Host::parse(host) {
            Ok(url::Host::Domain(domain)) => Ok(Self::Host(domain)),
            // Numeric spellings such as `2130706433` or `0x7f.1` are addresses.
            Ok(url::Host::Ipv4(address)) => Ok(Self::Network(IpNetwork::single(address.into()))),
            Ok(url::Host::Ipv6(address)) => Ok(Self::Network(IpNetwork::single(address.into()))),
            Err(error) => Err(invalid(&error.to_string())),
        }
    }
}

/// Parses a comma-separated allow-list; blank entries are skipped.
pub fn parse_allow_list(text: &str) -> Result<Vec<AllowRule>, ParseAllowRuleError> {
    text.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// A one-line description of an allow-list for start-up logs: its entries in
/// normalized form, or `none`.
pub fn describe_allow_list(rules: &[AllowRule]) -> String {
    if rules.is_empty() {
        return "none".to_owned();
    }
    let entries: Vec<String> = rules.iter().map(ToString::to_string).collect();
    entries.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> AllowRule {
        AllowRule::Network(text.parse().unwrap())
    }

    #[test]
    fn parses_hosts_addresses_and_networks() {
        let rules = parse_allow_list(
            " 127.0.0.1, ::1,localhost, 10.0.0.0/8,[::1], Hooks.Internal., fd00::/8,,",
        )
        .unwrap();
        assert_eq!(
            rules,
            vec![
                network("127.0.0.1/32"),
                network("::1/128"),
                AllowRule::Host("localhost".into()),
                network("10.0.0.0/8"),
                network("::1/128"),
                AllowRule::Host("hooks.internal".into()),
                network("fd00::/8"),
            ]
        );
        assert_eq!(
            describe_allow_list(&rules),
            "127.0.0.1/32, ::1/128, localhost, 10.0.0.0/8, ::1/128, hooks.internal, fd00::/8"
        );
    }

    #[test]
    fn reads_numeric_ipv4_spellings_as_addresses() {
        assert_eq!("2130706433".parse(), Ok(network("127.0.0.1")));
        assert_eq!("0x7f.1".parse(), Ok(network("127.0.0.1")));
        assert_eq!("0177.0.0.1".parse(), Ok(network("127.0.0.1")));
    }

    #[test]
    fn stores_international_names_in_ascii() {
        assert_eq!(
            "bücher.example".parse(),
            Ok(AllowRule::Host("xn--bcher-kva.example".into()))
        );
    }

    #[test]
    fn rejects_what_it_cannot_honour_exactly() {
        for entry in [
            "localhost:8080",
            "http://localhost",
            "*.example.com",
            "10.0.0.0/33",
            "10.0.0/8",
            "exa mple.com",
        ] {
            let error = entry.parse::<AllowRule>().unwrap_err();
            assert_eq!(error.entry, entry, "{error}");
        }
        let error = parse_allow_list("127.0.0.1,localhost:80").unwrap_err();
        assert!(
            error.to_string().contains("ports are not supported"),
            "{error}"
        );
    }

    #[test]
    fn describes_an_empty_list() {
        assert_eq!(parse_allow_list(" , ").unwrap(), vec![]);
        assert_eq!(describe_allow_list(&[]), "none");
    }
}
