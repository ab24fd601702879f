//! What changes at each hop. Hop-by-hop headers (RFC 9110 §7.6.1) end at the gateway,
//! but for a switch of protocols (`Upgrade`, as a WebSocket handshake asks for), which
//! goes on: such a request goes to its version's upstream on a connection of its own, and
//! if the upstream switches (`101`), the two connections become one tunnel. And the
//! client's address joins `X-Forwarded-For`. A client's `x-gray-shadow` ends here too.

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::mirror::SHADOW;

/// Headers meaningful for one connection only, never forwarded as they are — and the
/// gateway's mark of a mirrored copy (`x-gray-shadow`), which only it may set: a client
/// sending it would pass a real request off as a copy, which a service may not act on.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        // The rest are not standard headers: one look at the name's text.
        || matches!(name.as_str(), "keep-alive" | "proxy-connection" | SHADOW)
}

/// Removes the hop-by-hop headers, including those `Connection` names. With
/// `keep_upgrade`, a message whose `Connection` names `upgrade` keeps its `Upgrade` and
/// `Connection: upgrade` (and only those): the switch of protocols goes on to the next
/// hop.
pub(crate) fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    // `TE: trailers` goes on (gRPC asks for trailers with it, as Envoy and nginx's
    // `grpc_pass` pass it), and nothing else of `TE`.
    let te = headers.get(header::TE);
    let only_trailers = te.is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !headers
        .keys()
        .any(|name| is_hop_by_hop(name) && !(only_trailers && name == header::TE))
    {
        return; // the common case: one pass of compares, nothing to remove
    }
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("trailers")
        });
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let protocols = match keep_upgrade && named.contains(&header::UPGRADE) {
        true => headers.get(header::UPGRADE).cloned(),
        false => None,
    };
    for name in named {
        headers.remove(name);
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
    if let Some(protocols) = protocols {
        headers.insert(header::UPGRADE, protocols);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Sets `X-Forwarded-Proto` to the scheme the client used (`http`, or `https` under TLS)
/// and `X-Forwarded-Host` to the host it asked for, replacing what a client sent (this
/// gateway is the edge: a client could claim anything). An HTTP/2 request names its host
/// in the URI (`:authority`), not in `Host`: it gets a `Host` from it, so an HTTP/1.1
/// upstream has one.
pub(crate) fn forwarded_proto_host<B>(req: &mut http::Request<B>, tls: bool) {
    let proto = if tls { "https" } else { "http" };
    let host = match req.headers().get(header::HOST) {
        Some(host) => Some(host.clone()),
        None => {
            let host = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let Some(host) = &host {
                req.headers_mut().insert(header::HOST, host.clone());
            }
            host
        }
    };
    let headers = req.headers_mut();
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
}

/// Appends `client` to `X-Forwarded-For`, joining the addresses a client or earlier
/// proxies put there into one list, as nginx's `$proxy_add_x_forwarded_for` does.
pub(crate) fn forwarded_for(headers: &mut HeaderMap, client: &HeaderValue) {
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            entry.insert(client.clone());
        }
        Entry::Occupied(mut entry) => {
            let mut list = Vec::new();
            for value in entry.iter().chain([client]) {
                if !list.is_empty() {
                    list.extend_from_slice(b", ");
                }
                list.extend_from_slice(value.as_bytes());
            }
            // Made of valid values and ", ": valid too.
            if let Ok(list) = HeaderValue::from_bytes(&list) {
                entry.insert(list);
            }
        }
    }
}

/// Once the client's connection and the upstream's have both switched protocols, copies
/// bytes between them until either side closes; on a task of its own.
pub(crate) fn tunnel(client: OnUpgrade, upstream: OnUpgrade, version: String) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(version, "upgrade: {e}");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(version, "tunnel: {e}");
        }
    });
}
