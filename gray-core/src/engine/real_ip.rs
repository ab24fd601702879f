//! `real_ip:` — which proxies' `X-Forwarded-For` (or `Forwarded`, `X-Real-IP`) is believed
//! for the client's address.
//!
//! A server knows the address of the connection's other end, the *peer*
//! ([`RequestView::peer_ip`](crate::RequestView::peer_ip)). Behind a load balancer or an
//! ingress that is the proxy, and the client is in a header the proxy wrote. As nginx's
//! `realip` module does (`set_real_ip_from`, `real_ip_header`, `real_ip_recursive on`), the
//! header is only read when the peer is a trusted proxy, and then from its right end: each
//! address there was written by the proxy it reached, and the first that is not a trusted
//! proxy's is the client. What a client writes itself (the left part) is never believed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderName;

use super::client_ip::Networks;

/// Most addresses of a forwarding header walked: the proxies' own part of it is short.
const MAX_HOPS: usize = 64;
/// Most lines of a repeated forwarding header read (the last ones).
const MAX_LINES: usize = 8;
/// Longest entry parsed (an address with a port, or a `forwarded` element with its
/// `proto`, `by` and `host`).
const MAX_ENTRY: usize = 512;

/// `real_ip:` compiled.
#[derive(Debug)]
pub(super) struct RealIp {
    /// The header's field, read in the one pass over the headers.
    pub(super) field: u32,
    pub(super) header: HeaderName,
    /// RFC 7239's `forwarded`: addresses are the `for=` of each element.
    forwarded: bool,
    trusted: Networks,
}

impl RealIp {
    pub(super) fn new(field: u32, header: HeaderName, trusted: Networks) -> Self {
        let forwarded = header == http::header::FORWARDED;
        Self {
            field,
            header,
            forwarded,
            trusted,
        }
    }

    /// The client's address, from the peer's and the lines of the forwarding header (in
    /// the order they came; the last ones when there are many).
    pub(super) fn client<'a>(
        &self,
        peer: Option<IpAddr>,
        lines: impl FnOnce() -> Lines<'a>,
    ) -> Option<IpAddr> {
        if !self.trusted.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let lines = lines();
        let mut hops = 0;
        for line in lines.iter().rev() {
            for entry in line.rsplit(|&b| b == b',') {
                if entry.trim_ascii().is_empty() {
                    continue;
                }
                hops += 1;
                if hops > MAX_HOPS {
                    return client;
                }
                let Some(ip) = self.entry(entry) else {
                    return client;
                };
                client = Some(ip);
                if !self.trusted.contains(ip) {
                    return client;
                }
            }
        }
        client
    }

    fn entry(&self, entry: &[u8]) -> Option<IpAddr> {
        let entry = entry.trim_ascii();
        if entry.len() > MAX_ENTRY {
            return None;
        }
        if !self.forwarded {
            return node(entry);
        }
        // `for=192.0.2.60;proto=http;by=203.0.113.43`, `for="[2001:db8::17]:4711"`.
        let value = entry.split(|&b| b == b';').find_map(|pair| {
            let (key, value) = pair.split_at_checked(pair.iter().position(|&b| b == b'=')?)?;
            key.trim_ascii()
                .eq_ignore_ascii_case(b"for")
                .then(|| value[1..].trim_ascii())
        })?;
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            _ => value,
        };
        node(value)
    }
}

/// The last [`MAX_LINES`] lines of a forwarding header, in order.
#[derive(Debug, Default)]
pub(super) struct Lines<'a> {
    lines: [&'a [u8]; MAX_LINES],
    len: usize,
    /// Where the oldest line kept is, once older ones were dropped to make room.
    start: usize,
}

impl<'a> Lines<'a> {
    pub(super) fn one(line: &'a [u8]) -> Self {
        let mut lines = Self::default();
        lines.push(line);
        lines
    }

    pub(super) fn push(&mut self, line: &'a [u8]) {
        if self.len < MAX_LINES {
            self.lines[self.len] = line;
            self.len += 1;
        } else {
            self.lines[self.start] = line;
            self.start = (self.start + 1) % MAX_LINES;
        }
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &'a [u8]> + '_ {
        (0..self.len).map(move |i| self.lines[(self.start + i) % MAX_LINES])
    }
}

/// An address, maybe with a port: `192.0.2.7`, `192.0.2.7:80`, `2001:db8::7`,
/// `[2001:db8::7]`, `[2001:db8::7]:443`. IPv4-mapped IPv6 addresses come back as IPv4.
pub(super) fn node(text: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(text).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || port(after.strip_prefix(':')?)) {
            return None;
        }
        return Some(IpAddr::V6(inner.parse::<Ipv6Addr>().ok()?).to_canonical());
    }
    let (host, p) = text.rsplit_once(':')?;
    port(p).then_some(())?;
    Some(IpAddr::V4(host.parse::<Ipv4Addr>().ok()?))
}

fn port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    fn real_ip(header: &str, trusted: &[&str]) -> RealIp {
        let list: Vec<String> = trusted.iter().map(|s| (*s).to_owned()).collect();
        let trusted = Networks::compile(&list).unwrap_or_else(|e| panic!("{e:?}"));
        let header = HeaderName::from_bytes(header.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        RealIp::new(0, header, trusted)
    }

    fn lines<'a>(list: &[&'a str]) -> Lines<'a> {
        let mut lines = Lines::default();
        for line in list {
            lines.push(line.as_bytes());
        }
        lines
    }

    #[test]
    fn nodes_with_and_without_ports() {
        for (text, want) in [
            ("192.0.2.7", "192.0.2.7"),
            ("192.0.2.7:8080", "192.0.2.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("[::ffff:192.0.2.7]:1", "192.0.2.7"),
        ] {
            assert_eq!(node(text.as_bytes()), ip(want), "{text}");
        }
        for text in [
            "",
            "unknown",
            "_hidden",
            "192.0.2",
            "192.0.2.7:",
            "192.0.2.7:123456",
            "[2001:db8::7",
            "[2001:db8::7]x",
            "2001:db8::7:80x",
            "[192.0.2.7]",
            "192.0.2.7 :80",
        ] {
            assert_eq!(node(text.as_bytes()), None, "{text}");
        }
        assert_eq!(node(b"\xff\xfe"), None);
    }

    #[test]
    fn the_walk_stops_at_the_first_address_not_trusted() {
        let real = real_ip("x-forwarded-for", &["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let client = |list: &[&str]| real.client(peer, || lines(list));
        // The client, then two proxies of ours.
        assert_eq!(
            client(&["203.0.113.9, 10.0.0.7, 10.0.0.8"]),
            ip("203.0.113.9")
        );
        // Whatever the client wrote before is not believed.
        assert_eq!(
            client(&["1.1.1.1, 203.0.113.9, 10.0.0.8"]),
            ip("203.0.113.9")
        );
        // Across repeated headers, in order.
        assert_eq!(
            client(&["1.1.1.1, 203.0.113.9", "10.0.0.8"]),
            ip("203.0.113.9")
        );
        // All trusted: the leftmost.
        assert_eq!(client(&["10.0.0.9, 10.0.0.8"]), ip("10.0.0.9"));
        // No header: the peer. Garbage: the last address read.
        assert_eq!(client(&[]), peer);
        assert_eq!(client(&["unknown"]), peer);
        assert_eq!(client(&["junk, 10.0.0.8"]), ip("10.0.0.8"));
        assert_eq!(client(&["203.0.113.9, , 10.0.0.8 "]), ip("203.0.113.9"));
        // A peer that is not trusted is the client, whatever it says.
        assert_eq!(
            real.client(ip("198.51.100.1"), || lines(&["10.0.0.1"])),
            ip("198.51.100.1")
        );
        // An unknown peer is not trusted.
        assert_eq!(real.client(None, || lines(&["203.0.113.9"])), None);
        // Bounded: past 64 addresses, or at an entry past 512 bytes, the walk stops.
        let many = std::iter::once("203.0.113.9".to_owned())
            .chain((0..100).map(|i| format!("10.0.1.{i}")))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(client(&[&many]), ip("10.0.1.36"));
        let forwarded = real_ip("forwarded", &["10.0.0.0/8"]);
        let long = format!("for=203.0.113.9;host={}, for=10.0.0.2", "a".repeat(600));
        assert_eq!(forwarded.client(peer, || lines(&[&long])), ip("10.0.0.2"));
        let short = format!("for=203.0.113.9;host={}, for=10.0.0.2", "a".repeat(400));
        assert_eq!(
            forwarded.client(peer, || lines(&[&short])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_is_read_by_its_for_parameters() {
        let real = real_ip("forwarded", &["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let header =
            r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https, For=10.0.0.5;by=10.0.0.1"#;
        assert_eq!(
            real.client(peer, || lines(&[header])),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(real.client(peer, || lines(&["for=unknown"])), peer);
        assert_eq!(real.client(peer, || lines(&["proto=http"])), peer);
    }

    #[test]
    fn many_lines_keep_the_last_ones() {
        let mut many = Lines::default();
        for i in 0..20u8 {
            many.push(if i == 19 { b"10.0.0.9" } else { b"203.0.113.1" });
        }
        let got: Vec<&[u8]> = many.iter().collect();
        assert_eq!(got.len(), MAX_LINES);
        assert_eq!(got.last(), Some(&&b"10.0.0.9"[..]));
    }

    /// An address as a forwarding header may hold it: IPv4 or IPv6, trusted or not, with
    /// or without a port, mapped, or junk.
    fn entry() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u8..4, 0u8..255).prop_map(|(a, b)| format!("10.0.{a}.{b}")),
            (0u8..4, 0u8..255).prop_map(|(a, b)| format!("203.0.{a}.{b}")),
            (0u8..255).prop_map(|b| format!("[::ffff:10.0.0.{b}]:80")),
            (0u16..512).prop_map(|b| format!("2001:db8::{b:x}")),
            Just("unknown".to_owned()),
            Just(String::new()),
            "[0-9a-f:.\\[\\] ]{0,12}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// What a client writes cannot move the client address: once the trusted proxies'
        /// part holds an address that is not theirs, any prefix gives the same answer. And
        /// the answer is always the peer or an address of the header.
        #[test]
        fn a_prefix_written_by_the_client_changes_nothing(
            prefix in proptest::collection::vec(entry(), 0..6),
            client in (0u8..4, 0u8..255).prop_map(|(a, b)| format!("203.0.{a}.{b}")),
            proxies in proptest::collection::vec((0u8..255).prop_map(|b| format!("10.0.0.{b}")), 0..4),
            split_lines in any::<bool>(),
        ) {
            let real = real_ip("x-forwarded-for", &["10.0.0.0/8", "2001:db8::/120"]);
            let peer = ip("10.0.0.1");
            let ours: Vec<String> = std::iter::once(client.clone()).chain(proxies).collect();
            let ours = ours.join(", ");
            let theirs = prefix.join(", ");
            let whole = format!("{theirs}, {ours}");
            let got = if split_lines {
                real.client(peer, || lines(&[theirs.as_str(), ours.as_str()]))
            } else {
                real.client(peer, || lines(&[whole.as_str()]))
            };
            prop_assert_eq!(got, ip(&client));
            // Any header: the peer, or an address written in it.
            let any = real.client(peer, || lines(&[whole.as_str()]));
            prop_assert!(
                any == peer || whole.split(',').any(|e| node(e.trim().as_bytes()) == any),
                "{:?} from {}", any, whole
            );
        }
    }
}
