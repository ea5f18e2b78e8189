//! Where segsync sends requests (a Mailchimp base URL, an alert webhook): public addresses
//! only, unless the installation allows private ones. A URL that names a loopback, private,
//! link-local or otherwise non-public address (`127.0.0.1`, `10.0.0.5`, `169.254.169.254`,
//! `::1`, `fe80::1`, `fd00::1`, `::ffff:10.0.0.5`, `localhost`) is refused, and so is a host
//! name that resolves to one: [`PublicOnly`] resolves names for the HTTP client and refuses
//! them at connection time, so that a name cannot point elsewhere after it was checked.
//!
//! An installation that talks to a local simulator or a test server allows private targets
//! (`segsync --allow-private-targets`, `SEGSYNC_ALLOW_PRIVATE_TARGETS=1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// How to allow private targets, for messages.
pub const ALLOW_HINT: &str = "segsync sends requests to public addresses only; an installation that talks to a local simulator or test server allows private ones with --allow-private-targets (or SEGSYNC_ALLOW_PRIVATE_TARGETS=1)";

/// What a non-public address is, in words; `None` for a public address.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private address",
        _ if ip.is_link_local() => "a link-local address",
        _ if ip.is_unspecified() || a == 0 => "an unspecified address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol address",
        (198, 18..=19, _) => "a benchmarking address",
        _ if ip.is_documentation() => "a documentation address",
        _ if ip.is_multicast() || ip.is_broadcast() || a >= 240 => {
            "a multicast or reserved address"
        }
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::/96).
    let embedded = match s {
        [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] if !ip.is_loopback() => ip.to_ipv4(),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            Some(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])))
        }
        _ => None,
    };
    if let Some(v4) = embedded {
        return non_public_v4(v4);
    }
    Some(match s[0] {
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_unspecified() => "an unspecified address",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xfc00..=0xfdff => "a unique local (private) address",
        0xff00..=0xffff => "a multicast address",
        0x2001 if s[1] == 0x0db8 => "a documentation address",
        _ => return None,
    })
}

/// Checks the host of `url` as written: an IP address must be public, `localhost` (and its
/// subdomains) is refused, unless `allow_private`. Names are checked when they are resolved
/// ([`PublicOnly`], [`check_resolved`]).
pub fn check_literal(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let why = match url.host() {
        Some(Host::Ipv4(ip)) => non_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => non_public(IpAddr::V6(ip)),
        Some(Host::Domain(d)) => is_localhost(d).then_some("a loopback address"),
        None => None,
    };
    match why {
        Some(what) => Err(refusal(url.host_str().unwrap_or_default(), what, None)),
        None => Ok(()),
    }
}

fn is_localhost(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "localhost" || n.ends_with(".localhost")
}

fn refusal(host: &str, what: &str, ip: Option<IpAddr>) -> String {
    match ip {
        Some(ip) => format!("{host} resolves to {ip}, {what}: {ALLOW_HINT}"),
        None => format!("{host} is {what}: {ALLOW_HINT}"),
    }
}

/// Resolves `url`'s host (a name) and checks every address it has, unless `allow_private`:
/// for a clear refusal before anything is sent (a check of the settings). A name that does
/// not resolve now passes: the client checks again at each connection.
pub async fn check_resolved(url: &Url, allow_private: bool) -> Result<(), String> {
    check_literal(url, allow_private)?;
    if allow_private {
        return Ok(());
    }
    let Some(Host::Domain(name)) = url.host() else {
        return Ok(());
    };
    match tokio::net::lookup_host((name, 0)).await {
        Ok(addrs) => addrs
            .map(|a| a.ip())
            .try_for_each(|ip| match non_public(ip) {
                Some(what) => Err(refusal(name, what, Some(ip))),
                None => Ok(()),
            }),
        Err(_) => Ok(()),
    }
}

/// The addresses of `name`, all public, or why not.
async fn public_addresses(name: &str) -> Result<Vec<SocketAddr>, String> {
    if is_localhost(name) {
        return Err(refusal(name, "a loopback address", None));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| format!("{name} cannot be resolved: {e}"))?
        .collect();
    for a in &addrs {
        if let Some(what) = non_public(a.ip()) {
            return Err(refusal(name, what, Some(a.ip())));
        }
    }
    Ok(addrs)
}

/// A resolver for the HTTP client that refuses names resolving to a non-public address
/// (at connection time, so that a name cannot change its answer after a check).
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = public_addresses(&name).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(non_public(ip).is_some(), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public(ip), None, "{ip}");
        }
    }

    #[test]
    fn urls_naming_private_hosts_are_refused_unless_allowed() {
        for u in [
            "http://169.254.169.254/latest/meta-data",
            "https://10.0.0.5/3.0",
            "https://[::1]:8443/3.0",
            "https://[fe80::1]/x",
            "https://[::ffff:7f00:1]/x",
            "http://localhost:8080/3.0",
            "http://api.localhost./3.0",
        ] {
            let url = Url::parse(u).unwrap();
            let e = check_literal(&url, false).unwrap_err();
            assert!(e.contains("--allow-private-targets"), "{u}: {e}");
            check_literal(&url, true).unwrap();
        }
        check_literal(
            &Url::parse("https://us6.api.mailchimp.com/3.0").unwrap(),
            false,
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_name_is_checked_by_its_addresses() {
        let url = Url::parse("http://localhost:1/").unwrap();
        assert!(check_resolved(&url, false).await.is_err());
        check_resolved(&url, true).await.unwrap();
    }
}
