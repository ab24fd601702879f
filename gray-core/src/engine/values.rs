//! The request values rules read: their table, built when a config compiles ([`Fields`],
//! [`HeaderNames`]), and their reading for one decision ([`Values`]) — lazily, each at
//! most once, the headers in one pass over the request when it can list them, and cached
//! when read twice.

use std::collections::HashMap;
use std::net::IpAddr;

use http::HeaderName;

use super::real_ip::{Lines, RealIp};
use super::request::{RequestView, cookie_in};

/// Request values that are read more than once per decision get one of these cache slots.
const SLOTS: usize = 8;
const NO_SLOT: u8 = u8::MAX;

/// Most rule headers one request can carry before the engine falls back to lookups.
const FOUND: usize = 8;

/// Header name → field, for the one pass over a request's headers.
#[derive(Debug)]
pub(super) struct HeaderNames {
    /// Bit `n` is set when a rule header name is `n` bytes long (bit 63: 63 or more), so
    /// most request headers are passed over with one bit test.
    lengths: u64,
    lookup: NameLookup,
    /// The `host` header's field when a rule reads it, else `u32::MAX`: HTTP/2 sends the
    /// host in the URI's authority, not as a header, so it is asked for by name when the
    /// pass over the headers did not meet it.
    host: u32,
    /// The `cookie` header's field when a rule reads a cookie, else `u32::MAX`: the pass
    /// over the headers keeps it, and cookies are read from what it kept.
    cookie: u32,
}

/// How a header name whose length matched is looked up.
#[derive(Debug)]
enum NameLookup {
    /// Few names: compared one by one.
    Linear(Box<[(Box<str>, u32)]>),
    /// Many names (a config with many routes on many headers).
    Hashed(std::collections::HashMap<Box<str>, u32>),
}

impl HeaderNames {
    /// The bit of `lengths` for a name of `len` bytes.
    #[inline]
    fn length_bit(len: usize) -> u64 {
        1 << len.min(63)
    }

    #[inline]
    fn field(&self, name: &str) -> Option<u32> {
        if self.lengths & Self::length_bit(name.len()) == 0 {
            return None;
        }
        match &self.lookup {
            NameLookup::Linear(names) => names
                .iter()
                .find(|(n, _)| n.len() == name.len() && **n == *name)
                .map(|&(_, f)| f),
            NameLookup::Hashed(names) => names.get(name).copied(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lengths == 0
    }
}

/// Field `field`'s bit in a decision's set of headers present (fields past 63 share bits:
/// a set bit means "maybe present", a clear one "absent").
#[inline(always)]
pub(super) fn field_bit(field: u32) -> u64 {
    1 << (field & 63)
}

/// A request value that rules read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Field {
    Header(HeaderName),
    Cookie(Box<str>),
    Query(Box<str>),
}

/// The `cookie` header as a field: interned with the first cookie a rule reads.
const COOKIE_HEADER: Field = Field::Header(http::header::COOKIE);

/// Above this many header names, the one-pass read looks names up in a hash map.
const LINEAR_NAMES: usize = 24;

impl HeaderNames {
    /// The header names among `fields`, for the one-pass read.
    fn new(fields: &[Field]) -> Self {
        // Field ids are bounded by the config's size, far below u32::MAX.
        let names: Vec<(Box<str>, u32)> = fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Field::Header(name) => Some((Box::from(name.as_str()), i as u32)),
                _ => None,
            })
            .collect();
        let lengths = names.iter().fold(0, |bits, (name, _)| {
            bits | HeaderNames::length_bit(name.len())
        });
        let named = |header: &HeaderName| {
            names
                .iter()
                .find(|(name, _)| **name == *header.as_str())
                .map_or(u32::MAX, |&(_, field)| field)
        };
        let (host, cookie) = (named(&http::header::HOST), named(&http::header::COOKIE));
        let lookup = if names.len() <= LINEAR_NAMES {
            NameLookup::Linear(names.into())
        } else {
            NameLookup::Hashed(names.into_iter().collect())
        };
        Self {
            lengths,
            lookup,
            host,
            cookie,
        }
    }
}

/// What the rules read of a request, built when a config compiles: the values, each
/// one's cache slot, the header names for the one pass over a request's headers, and whose
/// forwarding header names the client.
#[derive(Debug)]
pub(super) struct Reads {
    fields: Box<[Field]>,
    /// Cache slot of each field (`NO_SLOT`: read at most once, so not cached).
    slots: Box<[u8]>,
    /// The header fields by name, for the one-pass read of a request's headers.
    pub(super) header_names: HeaderNames,
    /// `real_ip:`: whose forwarding header names the client.
    real_ip: Option<RealIp>,
}

impl Reads {
    /// The table of `fields`, interned while the config compiled, and `real_ip`.
    pub(super) fn new(fields: Fields, real_ip: Option<RealIp>) -> Self {
        let (fields, slots) = fields.finish();
        let header_names = HeaderNames::new(&fields);
        Self {
            fields,
            slots,
            header_names,
            real_ip,
        }
    }
}

/// Interns the request values rules read while a config is compiled, counting uses to
/// decide which get a cache slot.
#[derive(Default)]
pub(super) struct Fields {
    list: Vec<Field>,
    uses: Vec<u32>,
    index: HashMap<Field, u32>,
}

impl Fields {
    pub(super) fn contains(&self, field: &Field) -> bool {
        self.index.contains_key(field)
    }

    pub(super) fn intern(&mut self, field: Field) -> u32 {
        // A cookie is read from the `cookie` header that the pass over the headers keeps.
        if matches!(field, Field::Cookie(_)) && !self.contains(&COOKIE_HEADER) {
            self.intern(COOKIE_HEADER);
        }
        if let Some(&i) = self.index.get(&field) {
            self.uses[i as usize] += 1;
            return i;
        }
        // Distinct fields are bounded by the config's size, far below u32::MAX.
        let i = self.list.len() as u32;
        self.index.insert(field.clone(), i);
        self.list.push(field);
        self.uses.push(1);
        i
    }

    /// The fields, and each one's cache slot: only fields read by two or more rules get one.
    fn finish(self) -> (Box<[Field]>, Box<[u8]>) {
        let mut next = 0u8;
        let slots = self
            .uses
            .iter()
            .map(|&uses| {
                if uses < 2 || usize::from(next) >= SLOTS {
                    return NO_SLOT;
                }
                next += 1;
                next - 1
            })
            .collect();
        (self.list.into(), slots)
    }
}

/// For a `host` header the request does not have, its URI's authority (HTTP/2 sends the
/// host there): what a view that cannot list its headers is asked after a miss. Out of
/// line: rare.
#[cold]
#[inline(never)]
fn authority_as_host<'r, R: RequestView + ?Sized>(
    req: &'r R,
    name: &HeaderName,
) -> Option<&'r [u8]> {
    (*name == http::header::HOST)
        .then(|| req.authority())
        .flatten()
        .map(str::as_bytes)
}

/// The request values of one decision, read lazily; values read twice are cached.
///
/// Headers are read in one pass when the request can list them: each request header
/// whose name a rule uses is kept in `found`, and a header not found is known absent.
pub(super) struct Values<'r, R: ?Sized> {
    pub(super) req: &'r R,
    fields: &'r [Field],
    /// The `cookie` header's field ([`HeaderNames`]), or `u32::MAX`.
    cookie_header: u32,
    slots: &'r [u8],
    filled: u8,
    cache: [Option<&'r [u8]>; SLOTS],
    /// Whether `found` holds every rule header of the request.
    pub(super) scanned: bool,
    found_len: u8,
    /// Bit `i` is set when the header of `found[i]` came more than once.
    repeated: u8,
    /// Bit `f % 64` is set for each field `f` in `found`: a clear bit means absent.
    pub(super) present: u64,
    /// `(field, value)`; `None` only in the unused tail, which keeps the array all zeroes
    /// when it is made (a `memset`, not a copy).
    found: [(u32, Option<&'r [u8]>); FOUND],
    real_ip: Option<&'r RealIp>,
    /// The connection's peer, once a rule (or `label.from`) asked for it.
    peer: Option<Option<IpAddr>>,
    /// The client's address, once a rule asked for it.
    client_ip: Option<Option<IpAddr>>,
}

impl<'r, R: RequestView + ?Sized> Values<'r, R> {
    #[inline(always)]
    pub(super) fn new(req: &'r R, reads: &'r Reads) -> Self {
        Self {
            req,
            fields: &reads.fields,
            cookie_header: reads.header_names.cookie,
            slots: &reads.slots,
            filled: 0,
            cache: [None; SLOTS],
            scanned: false,
            found_len: 0,
            repeated: 0,
            present: 0,
            found: [(0, None); FOUND],
            real_ip: reads.real_ip.as_ref(),
            peer: None,
            client_ip: None,
        }
    }

    /// Reads every header a rule uses in one pass over the request's headers.
    #[inline]
    pub(super) fn scan(&mut self, names: &HeaderNames) {
        let mut len = 0usize;
        let mut overflow = false;
        let mut repeated = 0u8;
        let mut present = 0u64;
        let found = &mut self.found;
        let listed = self.req.for_each_header(|name, value| {
            let Some(field) = names.field(name) else {
                return;
            };
            if let Some(i) = found[..len].iter().position(|&(f, _)| f == field) {
                repeated |= 1 << i; // the first value counts
                return;
            }
            match found.get_mut(len) {
                Some(slot) => {
                    *slot = (field, Some(value));
                    present |= field_bit(field);
                    len += 1;
                }
                None => overflow = true,
            }
        });
        self.scanned = listed && !overflow;
        // `len <= FOUND`, which fits in a byte.
        self.found_len = len as u8;
        self.repeated = repeated;
        self.present = present;
        if names.host != u32::MAX {
            self.scan_authority(names.host);
        }
    }

    /// The end of [`scan`](Self::scan) when the rules read `host` (field `host`) and the
    /// request had no `Host` header: the URI's authority as `host` (HTTP/2 sends the host
    /// there). Out of line: rare.
    #[cold]
    #[inline(never)]
    fn scan_authority(&mut self, host: u32) {
        if !self.scanned || self.present & field_bit(host) != 0 {
            return;
        }
        let len = usize::from(self.found_len);
        if let (Some(value), Some(slot)) = (self.req.authority(), self.found.get_mut(len)) {
            *slot = (host, Some(value.as_bytes()));
            self.present |= field_bit(host);
            self.found_len += 1;
        }
    }

    /// Whether header `field` came exactly once; `false` when that is not known (the
    /// headers were not read in one pass).
    #[inline]
    pub(super) fn only_once(&self, field: u32) -> bool {
        self.scanned
            && self.found[..usize::from(self.found_len)]
                .iter()
                .position(|&(f, _)| f == field)
                .is_some_and(|i| self.repeated & (1 << i) == 0)
    }

    #[inline(always)]
    pub(super) fn get(&mut self, field: u32) -> Option<&'r [u8]> {
        let index = field as usize;
        let slot = self.slots.get(index).map_or(SLOTS, |&s| usize::from(s));
        if slot < SLOTS && self.filled & (1 << slot) != 0 {
            return self.cache[slot];
        }
        let value = match self.fields.get(index)? {
            Field::Header(_) if self.scanned => {
                if self.present & field_bit(field) == 0 {
                    return None;
                }
                return self.found[..usize::from(self.found_len)]
                    .iter()
                    .find(|&&(f, _)| f == field)
                    .and_then(|&(_, v)| v);
            }
            Field::Header(name) => self
                .req
                .header(name)
                .or_else(|| authority_as_host(self.req, name)),
            Field::Cookie(name) => self.cookie(name),
            Field::Query(name) => self.req.query_param(name),
        };
        if slot < SLOTS {
            self.cache[slot] = value;
            self.filled |= 1 << slot;
        }
        value
    }

    /// The connection's peer (an IPv4-mapped address as IPv4), read once per decision,
    /// when a rule first asks: for `label.from`, and under [`client_ip`](Self::client_ip).
    #[inline]
    pub(super) fn peer_ip(&mut self) -> Option<IpAddr> {
        if let Some(ip) = self.peer {
            return ip;
        }
        let ip = self.req.peer_ip().map(|ip| ip.to_canonical());
        self.peer = Some(ip);
        ip
    }

    /// The client's address: the peer's, or the one a trusted proxy's header names
    /// (`real_ip:`). Found once per decision, when a rule first asks.
    #[inline]
    pub(super) fn client_ip(&mut self) -> Option<IpAddr> {
        if let Some(ip) = self.client_ip {
            return ip;
        }
        let peer = self.peer_ip();
        let ip = self.find_client_ip(peer);
        self.client_ip = Some(ip);
        ip
    }

    #[inline(never)]
    fn find_client_ip(&self, peer: Option<IpAddr>) -> Option<IpAddr> {
        let Some(real) = self.real_ip else {
            return peer;
        };
        real.client(peer, || {
            let field = real.field;
            if self.scanned {
                if self.present & field_bit(field) == 0 {
                    return Lines::default();
                }
                if self.only_once(field)
                    && let Some(&(_, Some(line))) = self.found[..usize::from(self.found_len)]
                        .iter()
                        .find(|&&(f, _)| f == field)
                {
                    return Lines::one(line);
                }
            }
            let mut lines = Lines::default();
            for line in self.req.header_all(&real.header) {
                lines.push(line);
            }
            lines
        })
    }

    /// Cookie `name`, from the `cookie` header the pass over the headers kept; a request
    /// without that header has none. A repeated `cookie` header (HTTP/2 may split one)
    /// and a request not read in one pass are asked for every value.
    #[inline]
    fn cookie(&self, name: &str) -> Option<&'r [u8]> {
        let header = self.cookie_header;
        if self.scanned && header != u32::MAX {
            if self.present & field_bit(header) == 0 {
                return None;
            }
            let found = &self.found[..usize::from(self.found_len)];
            match found.iter().position(|&(f, _)| f == header) {
                None => return None,
                Some(i) if self.repeated & (1 << i) == 0 => {
                    return found[i].1.and_then(|line| cookie_in(line, name));
                }
                Some(_) => {}
            }
        }
        self.req.cookie(name)
    }
}
