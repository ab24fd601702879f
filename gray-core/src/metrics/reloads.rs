//! [`Reloads`]: what became of a [`Gray`](crate::Gray)'s reloads, and which rules are in
//! force — for an operator to see, in every replica, that an edit of the rules file was
//! applied, or refused and why.

use std::time::SystemTime;

use crate::rules::{Config, Error};

/// What became of a [`Gray`](crate::Gray)'s reloads, and which rules are in force:
/// [`Gray::reloads`](crate::Gray::reloads), and in the Prometheus text of
/// [`Metrics`](crate::metrics::Metrics) as `gray_config_reloads_total{result}`,
/// `gray_config_last_reload_successful`,
/// `gray_config_last_reload_success_timestamp_seconds` and `gray_config_info{fingerprint}`
/// (Prometheus' own names for its own rules file).
///
/// A refused reload leaves the rules in force, so without this a bad edit of a ConfigMap
/// shows only in a log line, while the operator believes the edit applied. Alert on
/// `gray_config_last_reload_successful == 0`, and on replicas that run different rules:
/// `count(count by (fingerprint) (gray_config_info)) > 1`.
///
/// ```
/// use gray_core::{Config, Gray};
///
/// let gray = Gray::new(Config::from_yaml("versions: [stable, canary]\n")?)?;
/// let first = gray.reloads().fingerprint;
///
/// let bad = Config::from_yaml("versions: [stable, canary]\nroutes: [{ name: a, to: beta }]\n")?;
/// assert!(gray.reload(bad).is_err());
/// let reloads = gray.reloads();
/// assert_eq!((reloads.applied, reloads.refused), (0, 1));
/// assert!(!reloads.last_reload_successful());
/// assert_eq!(
///     reloads.last_error.as_deref(),
///     Some(r#"route "a": to: unknown version "beta" (not in `versions`)"#)
/// );
/// assert_eq!(reloads.fingerprint, first); // the rules in force stayed
///
/// gray.reload(Config::from_json(r#"{ "versions": ["stable", "canary", "v3"] }"#)?)?;
/// let reloads = gray.reloads();
/// assert_eq!((reloads.applied, reloads.refused), (1, 1));
/// assert!(reloads.last_reload_successful());
/// assert_ne!(reloads.fingerprint, first);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloads {
    /// Reloads applied since the `Gray` was made.
    pub applied: u64,
    /// Reloads refused — the file could not be read or parsed, or its rules were invalid —
    /// since the `Gray` was made. The rules in force stayed each time.
    pub refused: u64,
    /// Why the last reload was refused, while none has been applied since: the error's
    /// message, naming the file, route and field at fault.
    pub last_error: Option<String>,
    /// When the rules were last loaded: the `Gray` made, or a reload applied.
    pub loaded_at: SystemTime,
    /// A fingerprint of the rules in force, weights a [`Rollout`](crate::rollout::Rollout) holds
    /// included: the same rules give the same fingerprint in every process that runs the
    /// same release of gray, whichever format (YAML, TOML, JSON) they were written in.
    /// Written in hex, 16 digits, in `gray_config_info{fingerprint}`
    /// ([`fingerprint_hex`](Self::fingerprint_hex)).
    pub fingerprint: u64,
}

impl Reloads {
    /// The record of a `Gray` made with `config`.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            applied: 0,
            refused: 0,
            last_error: None,
            loaded_at: SystemTime::now(),
            fingerprint: fingerprint(config),
        }
    }

    /// Whether the last reload was applied (`true` before any reload).
    pub fn last_reload_successful(&self) -> bool {
        self.last_error.is_none()
    }

    /// Counts the outcome of a reload.
    pub(crate) fn record(&mut self, outcome: &Result<(), Error>) {
        match outcome {
            Ok(()) => {
                self.applied += 1;
                self.last_error = None;
                self.loaded_at = SystemTime::now();
            }
            Err(e) => {
                self.refused += 1;
                self.last_error = Some(e.to_string());
            }
        }
    }

    /// The fingerprint as `gray_config_info{fingerprint}` and `explain --fingerprint` write
    /// it: 16 hex digits.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }

    /// [`loaded_at`](Self::loaded_at) in seconds since the Unix epoch, as
    /// `gray_config_last_reload_success_timestamp_seconds` gives it.
    pub fn loaded_at_unix(&self) -> f64 {
        self.loaded_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// The fingerprint of `config`: xxh3 of its JSON form, which the three formats share
/// (fields in declaration order, weights sorted by version).
pub(crate) fn fingerprint(config: &Config) -> u64 {
    /// Hashes what is written to it, so the JSON is never held whole.
    struct Hasher(xxhash_rust::xxh3::Xxh3Default);

    impl std::io::Write for Hasher {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    // Buffered: serde_json writes a few bytes at a time, and the hasher's update has a
    // cost per call.
    let mut writer =
        std::io::BufWriter::with_capacity(8 * 1024, Hasher(xxhash_rust::xxh3::Xxh3Default::new()));
    // A `Config` always serializes (string keys, finite numbers: weights are checked
    // before a config is compiled, and serde_json writes a non-finite one as null), and
    // the hasher never fails a write.
    let _ = serde_json::to_writer(&mut writer, config);
    match writer.into_inner() {
        Ok(hasher) => hasher.0.digest(),
        Err(e) => e.into_inner().get_ref().0.digest(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_rules_in_any_format_have_one_fingerprint() {
        let yaml = Config::from_yaml(
            "versions: [stable, canary]\nroutes:\n  - name: users\n    split: { by: { header: x-user-id }, weights: { stable: 90, canary: 10 } }\n",
        )
        .unwrap();
        let toml = Config::from_toml(
            "versions = [\"stable\", \"canary\"]\n[[routes]]\nname = \"users\"\n[routes.split]\nby = { header = \"x-user-id\" }\nweights = { canary = 10, stable = 90 }\n",
        )
        .unwrap();
        let json = Config::from_json(
            r#"{"routes":[{"split":{"weights":{"canary":10,"stable":90},"by":{"header":"x-user-id"}},"name":"users"}],"versions":["stable","canary"]}"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&yaml), fingerprint(&toml));
        assert_eq!(fingerprint(&yaml), fingerprint(&json));

        let mut wider = yaml.clone();
        if let Some(split) = &mut wider.routes[0].split {
            split.weights.insert("stable".into(), 70.0);
            split.weights.insert("canary".into(), 30.0);
        }
        assert_ne!(fingerprint(&yaml), fingerprint(&wider));
    }
}
