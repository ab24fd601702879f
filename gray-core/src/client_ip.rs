//! The client's address: routes on it (`match.client_ip`), sticky splits by it
//! (`split.by: client_ip`), and which proxies' `X-Forwarded-For` is believed (`real_ip:`).
//!
//! A server knows the address of the connection's other end, the *peer*
//! ([`RequestView::peer_ip`](crate::RequestView::peer_ip)). Behind a load balancer or an
//! ingress that is the proxy, and the client is in a header the proxy wrote. As nginx's
//! `realip` module does (`set_real_ip_from`, `real_ip_header`, `real_ip_recursive on`), the
//! header is only read when the peer is a trusted proxy, and then from its right end: each
//! address there was written by the proxy it reached, and the first that is not a trusted
//! proxy's is the client. What a client writes itself (the left part) is never believed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderName;
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::error::Problem;

/// The address of the connection a request came on: a request extension for servers
/// that know it, read by the `http` types' [`RequestView::peer_ip`](crate::RequestView::peer_ip).
///
/// `gray_tower::GrayLayer` also reads axum's `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`), and `gray_actix` the
/// connection's peer address, so neither needs it.
///
/// ```
/// use gray_core::{Config, Gray, PeerAddr};
///
/// let gray = Gray::new(Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: office
///     match: { client_ip: { cidr: [10.20.0.0/16] } }
///     to: canary
/// "#)?)?;
/// let mut req = http::Request::get("/").body(())?;
/// req.extensions_mut().insert(PeerAddr("10.20.3.4:50312".parse()?));
/// assert_eq!(gray.decide(&req).version(), "canary");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// `match.client_ip:` — the client's address is in one of these networks.
///
/// `cidr` lists networks (`10.0.0.0/8`, `2001:db8::/32`) and single addresses
/// (`192.0.2.7`); IPv4 clients on an IPv6 socket (`::ffff:192.0.2.7`) are matched as the
/// IPv4 address they are. The client's address is the peer's, or the one `real_ip:` finds
/// in a trusted proxy's header ([`RealIpConfig`]). A request whose client address is not
/// known (a server that does not tell it) matches no network; with `invert`, it matches.
///
/// ```
/// let config = gray_core::Config::from_yaml(r#"
/// versions: [stable, canary]
/// routes:
///   - name: office
///     match: { client_ip: { cidr: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7] } }
///     to: canary
/// "#)?;
/// let m = config.routes[0].matches.as_ref().unwrap().client_ip.as_ref().unwrap();
/// assert_eq!(m.cidr.len(), 3);
/// # Ok::<(), gray_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientIpMatch {
    /// Networks in CIDR notation, or single addresses; at least one.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub cidr: Vec<String>,
    /// Invert the condition: it holds when the client is in none of them (or unknown).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

/// `real_ip:` — the proxies in front of the service, whose header naming the client is
/// believed (nginx's `set_real_ip_from` and `real_ip_header`, with `real_ip_recursive on`).
///
/// Without it the client's address is the connection's peer. With it, when the peer is in
/// `trusted`, the addresses in `header` are read from the right: the first one that is not
/// in `trusted` is the client (all trusted: the leftmost). A peer that is not trusted is
/// the client, whatever its header says; so is the last address read when the next one is
/// not an address. A peer the server does not tell counts as trusted only when `trusted`
/// holds a network of every address (`0.0.0.0/0` or `::/0`).
///
/// ```
/// let config = gray_core::Config::from_yaml(r#"
/// real_ip:
///   header: x-forwarded-for         # the default; also x-real-ip, forwarded (RFC 7239)
///   trusted: [10.0.0.0/8, 172.16.0.0/12]
/// versions: [stable, canary]
/// "#)?;
/// assert_eq!(config.real_ip.unwrap().trusted.len(), 2);
/// # Ok::<(), gray_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RealIpConfig {
    /// The header proxies write the client's address in (default `x-forwarded-for`). A
    /// list of addresses, comma-separated, across repeated headers in order; addresses may
    /// carry a port (`192.0.2.7:5012`, `[2001:db8::7]:443`). `forwarded` is read as RFC
    /// 7239's header: the `for=` of each element.
    #[serde(default = "forwarded_for")]
    pub header: String,
    /// Networks (or single addresses) of the proxies whose header is believed; at least one.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub trusted: Vec<String>,
}

fn forwarded_for() -> String {
    "x-forwarded-for".to_owned()
}

/// Most networks in one list: each request that needs it is checked against all of them.
const MAX_NETWORKS: usize = 4096;
/// Most addresses of a forwarding header walked: the proxies' own part of it is short.
const MAX_HOPS: usize = 64;
/// Most lines of a repeated forwarding header read (the last ones).
const MAX_LINES: usize = 8;
/// Longest entry parsed (an address with a port, or a `forwarded` element with its
/// `proto`, `by` and `host`).
const MAX_ENTRY: usize = 512;

/// Compiled networks: a client address is in one of them. Each as its address and mask,
/// by family, so a test is a mask and a compare.
#[derive(Debug)]
pub(crate) struct Networks {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
    /// A network holds every address (a peer the server does not tell is in it).
    everything: bool,
}

impl Networks {
    /// Compiles a list, naming the index of the entry at fault.
    pub(crate) fn compile(list: &[String]) -> Result<Self, (Option<usize>, Problem)> {
        if list.is_empty() {
            return Err((None, Problem::NoNetworks));
        }
        if list.len() > MAX_NETWORKS {
            return Err((
                None,
                Problem::TooMany {
                    count: list.len(),
                    max: MAX_NETWORKS,
                },
            ));
        }
        let nets = list
            .iter()
            .enumerate()
            .map(|(i, text)| network(text).ok_or((Some(i), Problem::BadNetwork(text.clone()))))
            .collect::<Result<Vec<_>, _>>()?;
        let everything = nets.iter().any(|n| n.prefix_len() == 0);
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((n.network().to_bits(), n.netmask().to_bits())),
                IpNet::V6(n) => v6.push((n.network().to_bits(), n.netmask().to_bits())),
            }
        }
        Ok(Self {
            v4: v4.into(),
            v6: v6.into(),
            everything,
        })
    }

    /// Whether `ip` (canonical: an IPv4-mapped address as IPv4) is in a network.
    #[inline]
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => {
                let bits = ip.to_bits();
                self.v4.iter().any(|&(net, mask)| bits & mask == net)
            }
            IpAddr::V6(ip) => {
                let bits = ip.to_bits();
                self.v6.iter().any(|&(net, mask)| bits & mask == net)
            }
        }
    }

    /// Whether a peer is trusted: in a network, or unknown and every address is.
    #[inline]
    pub(crate) fn trusts(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            Some(ip) => self.contains(ip),
            None => self.everything,
        }
    }
}

/// A network or a single address, IPv4-mapped IPv6 networks as the IPv4 ones they are.
fn network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::V4(Ipv4Net::new(v4, v6.prefix_len() - 96).ok()?),
            None => net,
        },
        _ => net,
    })
}

/// `real_ip:` compiled.
#[derive(Debug)]
pub(crate) struct RealIp {
    /// The header's field, read in the one pass over the headers.
    pub(crate) field: u32,
    pub(crate) header: HeaderName,
    /// RFC 7239's `forwarded`: addresses are the `for=` of each element.
    forwarded: bool,
    trusted: Networks,
}

impl RealIp {
    pub(crate) fn new(field: u32, header: HeaderName, trusted: Networks) -> Self {
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
    pub(crate) fn client<'a>(
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
pub(crate) struct Lines<'a> {
    lines: [&'a [u8]; MAX_LINES],
    len: usize,
    /// Where the oldest line kept is, once older ones were dropped to make room.
    start: usize,
}

impl<'a> Lines<'a> {
    pub(crate) fn one(line: &'a [u8]) -> Self {
        let mut lines = Self::default();
        lines.push(line);
        lines
    }

    pub(crate) fn push(&mut self, line: &'a [u8]) {
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
pub(crate) fn node(text: &[u8]) -> Option<IpAddr> {
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

/// The bytes a split by client address hashes: the address's 4 (IPv4) or 16 (IPv6) bytes.
#[inline]
pub(crate) fn key(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            &buf[..4]
        }
        IpAddr::V6(v6) => {
            *buf = v6.octets();
            &buf[..]
        }
    }
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
    fn networks_and_single_addresses() {
        let list = [
            "10.0.0.0/8",
            "192.0.2.7",
            "2001:db8::/32",
            "::ffff:172.16.0.0/108",
        ];
        let nets = Networks::compile(&list.map(str::to_owned)).unwrap_or_else(|e| panic!("{e:?}"));
        for inside in ["10.1.2.3", "192.0.2.7", "2001:db8:1::1", "172.16.9.9"] {
            assert!(
                nets.contains(ip(inside).unwrap_or_else(|| panic!())),
                "{inside}"
            );
        }
        for outside in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "172.32.0.1"] {
            assert!(
                !nets.contains(ip(outside).unwrap_or_else(|| panic!())),
                "{outside}"
            );
        }
        assert!(!nets.trusts(None), "an unknown peer is not trusted");
        let all = Networks::compile(&["0.0.0.0/0".to_owned()]).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(all.trusts(None));
        assert!(matches!(
            Networks::compile(&["10.0.0.0/8".into(), "10.0.0.0/33".into()]),
            Err((Some(1), Problem::BadNetwork(_)))
        ));
        assert!(matches!(
            Networks::compile(&[]),
            Err((None, Problem::NoNetworks))
        ));
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

    #[test]
    fn keys_are_address_bytes() {
        let mut buf = [0; 16];
        assert_eq!(
            key(ip("192.0.2.7").unwrap_or_else(|| panic!()), &mut buf),
            [192, 0, 2, 7]
        );
        assert_eq!(
            key(ip("2001:db8::1").unwrap_or_else(|| panic!()), &mut buf).len(),
            16
        );
    }
}
