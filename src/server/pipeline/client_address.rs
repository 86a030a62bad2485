//! The sender's address, for the allowlist and the access log: the peer,
//! or what trusted proxies say it is.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};

/// The sender's address: the peer, unless the peer is a trusted proxy.
/// Then the chain `X-Forwarded-For` + peer is walked from the right, past
/// trusted proxies, to the first address that is not one: entries further
/// left were written by whoever the proxy talked to and may be forged.
/// `None` (an unknown client, in no `allow_ips`) when that walk meets an
/// entry that is not an address, or finds only trusted proxies: the
/// left-most entry is never believed just because nothing else is left.
pub(super) fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let values: Vec<&HeaderValue> = headers.get_all("x-forwarded-for").iter().collect();
    for value in values.into_iter().rev() {
        let text = value.to_str().ok()?;
        for entry in text.rsplit(',') {
            let ip = forwarded_for_entry(entry.trim())?;
            if !is_trusted(&ip) {
                return Some(ip);
            }
        }
    }
    None
}

/// One `X-Forwarded-For` entry: `ip`, `ipv4:port`, `[ipv6]` or `[ipv6]:port`.
fn forwarded_for_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(chain: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for value in chain {
            h.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn client_address_trusts_forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = forwarded(&["6.6.6.6, 192.30.252.1, 10.1.1.1"]);
        // From a trusted proxy: the right-most untrusted entry (6.6.6.6 may be forged).
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &trusted),
            Some(ip("192.30.252.1"))
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), &h, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &h, &[]),
            Some(ip("10.0.0.2"))
        );
        // Several header lines form one chain, the last line right-most.
        let lines = forwarded(&["192.30.252.1", "6.6.6.6, 10.1.1.1"]);
        assert_eq!(
            client_address(ip("10.0.0.2"), &lines, &trusted),
            Some(ip("6.6.6.6"))
        );
    }

    #[test]
    fn client_address_parses_ports_and_brackets() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        for (entry, client) in [
            ("192.30.252.1:4711", "192.30.252.1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            // A port on the client, and a trusted proxy (with a port) after it.
            let h = forwarded(&[&format!("6.6.6.6, {entry}, 10.1.1.1:80")]);
            assert_eq!(
                client_address(peer, &h, &trusted),
                Some(ip(client)),
                "{entry}"
            );
        }
    }

    #[test]
    fn client_address_is_unknown_rather_than_a_guess() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = ip("10.0.0.2");
        for chain in [
            // An entry that does not parse, right of the forged left-most one.
            "192.30.252.1, unknown, 10.1.1.1",
            "192.30.252.1, garbage:port",
            "192.30.252.1, ",
            "192.30.252.1, [2001:db8::1",
            // Only trusted proxies: the left-most entry is not believed.
            "10.1.1.1, 10.2.2.2",
        ] {
            let h = forwarded(&[chain]);
            assert_eq!(client_address(peer, &h, &trusted), None, "{chain:?}");
        }
        // A trusted proxy that sends no chain: only trusted addresses.
        assert_eq!(client_address(peer, &HeaderMap::new(), &trusted), None);
    }
}
