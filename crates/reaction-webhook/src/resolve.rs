//! The DNS resolver given to reqwest: it resolves a webhook's host and hands
//! back only the addresses the [`DestinationPolicy`] lets a webhook reach.
//!
//! Filtering here, rather than checking the host before the request, is what
//! defeats DNS rebinding: the addresses this resolver returns are the ones the
//! connection is made to, with no second lookup in between that a hostile DNS
//! server could answer differently. When no address is left the resolver fails
//! with [`Error::BlockedDestination`], which the classification recognises in
//! reqwest's error chain.
//!
//! Literal IP hosts never reach a resolver; the reaction checks them itself.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::destination::DestinationPolicy;
use crate::error::Error;

/// A system resolver (`getaddrinfo` through tokio) that drops blocked addresses.
#[derive(Clone, Debug)]
pub(crate) struct GuardedResolver {
    policy: Arc<DestinationPolicy>,
}

impl GuardedResolver {
    /// A resolver applying `policy`.
    pub fn new(policy: Arc<DestinationPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port on the addresses it is given.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted = permitted_addresses(&policy, &host, resolved)?;
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `host` a webhook may connect to, or the error saying why
/// none may be.
pub(crate) fn permitted_addresses(
    policy: &DestinationPolicy,
    host: &str,
    resolved: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Error> {
    if policy.allows_host(host) {
        return Ok(resolved);
    }

    let mut first_blocked = None;
    let mut permitted = Vec::with_capacity(resolved.len());
    for address in resolved {
        match policy.check_address(address.ip()) {
            Ok(()) => permitted.push(address),
            Err(range) => {
                first_blocked.get_or_insert((address.ip(), range));
            }
        }
    }

    match first_blocked {
        Some((address, range)) if permitted.is_empty() => Err(Error::BlockedDestination {
            host: host.to_owned(),
            address,
            reason: range.to_string(),
        }),
        Some((address, _)) => {
            tracing::debug!(
                %host,
                %address,
                kept = permitted.len(),
                "dropped blocked addresses of a webhook host"
            );
            Ok(permitted)
        }
        None => Ok(permitted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allow::AllowRule;

    fn addresses(texts: &[&str]) -> Vec<SocketAddr> {
        texts
            .iter()
            .map(|text| SocketAddr::new(text.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn keeps_public_addresses_and_drops_blocked_ones() {
        let policy = DestinationPolicy::default();
        let kept = permitted_addresses(
            &policy,
            "rebind.example",
            addresses(&["127.0.0.1", "93.184.215.14", "::1"]),
        )
        .unwrap();
        assert_eq!(kept, addresses(&["93.184.215.14"]));
    }

    #[test]
    fn fails_when_every_address_is_blocked() {
        let policy = DestinationPolicy::default();
        let error = permitted_addresses(&policy, "localhost", addresses(&["::1", "127.0.0.1"]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "localhost resolves only to blocked addresses (::1: loopback (::1/128))"
        );
    }

    #[test]
    fn allowed_host_keeps_whatever_it_resolves_to() {
        let policy = DestinationPolicy::new(&[AllowRule::Host("localhost".into())]);
        let resolved = addresses(&["::1", "127.0.0.1"]);
        assert_eq!(
            permitted_addresses(&policy, "localhost", resolved.clone()).unwrap(),
            resolved
        );
        assert!(permitted_addresses(&policy, "other.internal", resolved).is_err());
    }

    #[test]
    fn allowed_network_keeps_only_its_addresses() {
        let policy = DestinationPolicy::new(&[AllowRule::Network("127.0.0.1".parse().unwrap())]);
        assert_eq!(
            permitted_addresses(&policy, "localhost", addresses(&["::1", "127.0.0.1"])).unwrap(),
            addresses(&["127.0.0.1"])
        );
    }
}
