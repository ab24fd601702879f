//! What a keyed split hashes (`split.by`): one request value, the client's address, or
//! the first of several that the request has (`first_of`).

use super::client_ip;
use super::request::RequestView;
use super::values::{Field, Fields, Values};
use crate::rules::names::{COOKIE_SEPARATORS, QUERY_SEPARATORS, header_name, plain_name};
use crate::rules::{Problem, SplitBy};

/// Most keys in one `first_of`.
const MAX_KEYS: usize = 8;

/// A split's compiled key.
#[derive(Debug)]
pub(super) enum SplitKey {
    /// A request value (header, cookie, query parameter).
    Field(u32),
    /// The client's address.
    ClientIp,
    /// The first of these the request has, not empty (never nested).
    FirstOf(Box<[SplitKey]>),
}

impl SplitKey {
    /// Compiles `by`, naming the field at fault under `at` (`split.by`): its problem, or
    /// that of each key of a `first_of` that has one.
    pub(super) fn compile(
        by: &SplitBy,
        at: &str,
        fields: &mut Fields,
    ) -> Result<Self, Vec<(String, Problem)>> {
        let one = |field: String, problem| vec![(field, problem)];
        Ok(match by {
            SplitBy::ClientIp => Self::ClientIp,
            SplitBy::Header(n) => {
                let name = header_name(n).map_err(|p| one(format!("{at}.header"), p))?;
                Self::Field(fields.intern(Field::Header(name)))
            }
            SplitBy::Cookie(n) => {
                let name =
                    plain_name(n, COOKIE_SEPARATORS).map_err(|p| one(format!("{at}.cookie"), p))?;
                Self::Field(fields.intern(Field::Cookie(name)))
            }
            SplitBy::Query(n) => {
                let name =
                    plain_name(n, QUERY_SEPARATORS).map_err(|p| one(format!("{at}.query"), p))?;
                Self::Field(fields.intern(Field::Query(name)))
            }
            SplitBy::FirstOf(list) => {
                let at = format!("{at}.first_of");
                if list.is_empty() {
                    return Err(one(at, Problem::NoKeys));
                }
                if list.len() > MAX_KEYS {
                    let (count, max) = (list.len(), MAX_KEYS);
                    return Err(one(at, Problem::TooMany { count, max }));
                }
                let (mut keys, mut problems) = (Vec::with_capacity(list.len()), Vec::new());
                for (i, by) in list.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    let key = match by {
                        SplitBy::FirstOf(_) => Err(one(at, Problem::NestedFirstOf)),
                        by => Self::compile(by, &at, fields),
                    };
                    match key {
                        Ok(key) => keys.push(key),
                        Err(found) => problems.extend(found),
                    }
                }
                if !problems.is_empty() {
                    return Err(problems);
                }
                Self::FirstOf(keys.into())
            }
        })
    }

    /// Whether the key is, or falls back to, the client's address.
    pub(super) fn reads_client_ip(&self) -> bool {
        match self {
            Self::ClientIp => true,
            Self::Field(_) => false,
            Self::FirstOf(keys) => keys.iter().any(Self::reads_client_ip),
        }
    }

    /// The bytes to hash for this request, if it has the key (not empty); an address is
    /// written into `ip`.
    #[inline]
    pub(super) fn read<'a, 'r: 'a, R: RequestView + ?Sized>(
        &self,
        values: &mut Values<'r, R>,
        ip: &'a mut [u8; 16],
    ) -> Option<&'a [u8]> {
        match self {
            Self::Field(field) => values.get(*field).filter(|v| !v.is_empty()),
            Self::ClientIp => values.client_ip().map(|addr| client_ip::key(addr, ip)),
            Self::FirstOf(keys) => Self::first_of(keys, values, ip),
        }
    }

    #[inline(never)]
    fn first_of<'a, 'r: 'a, R: RequestView + ?Sized>(
        keys: &[SplitKey],
        values: &mut Values<'r, R>,
        ip: &'a mut [u8; 16],
    ) -> Option<&'a [u8]> {
        for key in keys {
            match key {
                Self::Field(field) => {
                    if let Some(value) = values.get(*field).filter(|v| !v.is_empty()) {
                        return Some(value);
                    }
                }
                Self::ClientIp => {
                    if let Some(addr) = values.client_ip() {
                        return Some(client_ip::key(addr, ip));
                    }
                }
                // Refused when compiled.
                Self::FirstOf(_) => {}
            }
        }
        None
    }
}

/// The cookie a split keyed by `by` can give a client without its key (`set_cookie:`):
/// `by`'s cookie, or the first cookie among its `first_of`.
pub(super) fn cookie_name(by: &SplitBy) -> Option<&str> {
    match by {
        SplitBy::Cookie(name) => Some(name),
        SplitBy::FirstOf(list) => list.iter().find_map(|by| match by {
            SplitBy::Cookie(name) => Some(name.as_str()),
            _ => None,
        }),
        _ => None,
    }
}
