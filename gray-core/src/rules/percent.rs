//! Percentages in the rules file (`weights:`, `mirror.percent`): plain numbers.
//!
//! Read through a visitor of their own, so that a value that is not a number is refused
//! with a message a user can act on — `"10%"`, as nginx's `split_clients` writes it, is
//! told to be written `10` — rather than the format's own ("invalid floating point",
//! "expected f64"). A quoted number (`"10"`, as a Helm template often writes a value) is
//! read as the number, in every format: YAML always read it so.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// A percentage's resolution: 100% is this many basis points (0.01%).
pub(crate) const BASIS_POINTS: u16 = 10_000;

/// One percentage.
pub(crate) fn one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    deserializer.deserialize_any(Percent)
}

/// A map of version → percentage (`weights:`). A version given twice is refused in every
/// format: the YAML and TOML readers refuse a repeated key themselves, serde_json would
/// keep the last one silently. Read with `deserialize_any`, so that a list or a number
/// written there is told what `weights:` is in YAML too (its reader, asked for a map, says
/// only "expected mapping start").
pub(crate) fn weights<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    deserializer.deserialize_any(Weights)
}

/// One weight, read as [`one`] reads it.
struct Weight(f64);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        one(deserializer).map(Weight)
    }
}

/// Reads `weights:`, a version at most once.
struct Weights;

impl<'de> Visitor<'de> for Weights {
    type Value = BTreeMap<String, f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of version to percent, such as { stable: 90, canary: 10 }")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut weights = BTreeMap::new();
        while let Some((version, Weight(weight))) = map.next_entry::<String, Weight>()? {
            match weights.entry(version) {
                Entry::Vacant(slot) => {
                    slot.insert(weight);
                }
                Entry::Occupied(slot) => {
                    return Err(de::Error::custom(format_args!(
                        "version `{}` is given two weights",
                        slot.key()
                    )));
                }
            }
        }
        Ok(weights)
    }
}

struct Percent;

impl<'de> Visitor<'de> for Percent {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of percent, such as 10 or 12.5")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        // Exact for every integer a percentage can be; a huge one is refused later, as
        // over 100, all the same.
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    /// A quoted number (`"10"`, as a template often writes a value) is the number, as
    /// YAML has always read it; `"10%"` is told how to write it; anything else is refused.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        if let Some(n) = v.parse::<f64>().ok().filter(|n| n.is_finite()) {
            return Ok(n);
        }
        let number = v.trim().strip_suffix('%').map(str::trim_end);
        match number {
            Some(n) if n.parse::<f64>().is_ok_and(f64::is_finite) => Err(E::custom(format_args!(
                "a percentage is a plain number: write {n}, not \"{v}\""
            ))),
            _ => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
        }
    }
}
