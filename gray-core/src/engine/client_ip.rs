//! The client's address: routes on it (`match.client_ip`) and sticky splits by it
//! (`split.by: client_ip`) — the connection's peer ([`PeerAddr`]), or behind proxies the
//! address `real_ip` finds.

use std::net::{IpAddr, SocketAddr};

use ipnet::{IpNet, Ipv4Net};

use crate::rules::Problem;

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

/// Most networks in one list: each request that needs it is checked against all of them.
const MAX_NETWORKS: usize = 4096;

/// Compiled networks: a client address is in one of them. Each as its address and mask,
/// by family, so a test is a mask and a compare.
#[derive(Debug)]
pub(super) struct Networks {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
    /// A network holds every address (a peer the server does not tell is in it).
    everything: bool,
}

impl Networks {
    /// Compiles a list, naming the index of the entry at fault.
    pub(super) fn compile(list: &[String]) -> Result<Self, (Option<usize>, Problem)> {
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
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
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
    pub(super) fn trusts(&self, peer: Option<IpAddr>) -> bool {
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

/// The bytes a split by client address hashes: the address's 4 (IPv4) or 16 (IPv6) bytes.
#[inline]
pub(super) fn key(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
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
    use std::net::IpAddr;

    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
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
