//! Which addresses channels may reach. A tenant writes its webhook's URL,
//! so without a guard it could aim the server at the deployment's own
//! services (PostgreSQL, Redis, a cloud metadata endpoint). Every address a
//! name resolves to is checked when the connection is made (so a name
//! that resolves differently later cannot slip by), and address literals
//! before it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is on the public internet: not loopback, private,
/// link-local, shared (CGNAT), multicast, documentation or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let last_v4 = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            // Forms that carry an IPv4 address a gateway may turn into a
            // connection to it: NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and the
            // old IPv4-compatible ::a.b.c.d; 6to4 (2002::/16) holds it in
            // the second and third groups.
            if (s[0] == 0x64 && s[1] == 0xff9b) || s[..6].iter().all(|g| *g == 0) {
                return is_public(IpAddr::V4(last_v4));
            }
            if s[0] == 0x2002 {
                let inner = std::net::Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
                return is_public(IpAddr::V4(inner));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                // Teredo tunnels (2001::/32) and documentation (2001:db8::/32).
                || (s[0] == 0x2001 && (s[1] == 0 || s[1] == 0x0db8)))
        }
    }
}

/// What a channel may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Refuses `ip` unless the policy allows it, saying how to allow it.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(format!(
                "{host} is {ip}, an internal address channels may not reach ([notifications] allow_private_targets allows it)"
            ))
        }
    }

    /// Resolves `host` and keeps the allowed addresses; none is an error.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            self.check(host, ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
        let mut refused = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|addr| match self.check(host, addr.ip()) {
                Ok(()) => true,
                Err(e) => {
                    refused = Some(e);
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(format!("{host} resolves to no address")),
            (false, _) => Ok(allowed),
        }
    }
}

/// The resolver of the HTTP client: [`AddressPolicy::resolve`].
#[derive(Debug)]
pub struct GuardedResolver(pub AddressPolicy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addrs =
                policy.resolve(name.as_str(), 0).await.map_err(Box::<dyn std::error::Error + Send + Sync>::from)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client that never follows redirects, ignores proxy variables,
/// gives up after `timeout`, and connects only where `policy` allows.
pub fn http_client(policy: AddressPolicy, timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver(policy)))
        .user_agent(concat!("mcp-notify/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "1.1.1.1", "64:ff9b::101:101", "2002:101:101::"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        let strict = AddressPolicy { allow_private: false };
        assert!(strict.check("x", "127.0.0.1".parse().unwrap()).unwrap_err().contains("allow_private_targets"));
        assert!(AddressPolicy { allow_private: true }.check("x", "127.0.0.1".parse().unwrap()).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_inside_is_refused() {
        let strict = AddressPolicy { allow_private: false };
        let refused = strict.resolve("localhost", 80).await.unwrap_err();
        assert!(refused.contains("internal address"), "{refused}");
        assert!(strict.resolve("[::1]", 80).await.is_err());
    }
}
