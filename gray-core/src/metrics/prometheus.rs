//! The Prometheus text of a [`Metrics`] snapshot.

use std::fmt::Write as _;

use super::record::LATENCY_BUCKETS;
use super::snapshot::{Metrics, VersionMetrics};

impl Metrics {
    /// The metrics in the Prometheus text format: `gray_requests_total{version, class}`,
    /// the histogram `gray_request_duration_seconds{version}`, the counter
    /// `gray_rejected_labels_total`, and the reloads' record ([`Reloads`](crate::metrics::Reloads)):
    /// `gray_config_reloads_total{result}`, `gray_config_last_reload_successful`,
    /// `gray_config_last_reload_success_timestamp_seconds`, `gray_config_info{fingerprint}`;
    /// and two gauges of the rules in force, to lay over the counters on a dashboard:
    /// `gray_split_weight{route, version}` (each declared version's percent in each split
    /// route, a [`Rollout`](crate::rollout::Rollout)'s stage included) and
    /// `gray_version_available{version}` (0 while
    /// [`Gray::set_available`](crate::Gray::set_available) keeps it out).
    pub fn prometheus(&self) -> String {
        let versions: Vec<(String, &VersionMetrics)> = self
            .versions
            .iter()
            .map(|v| (escape_label(&v.version), v))
            .collect();
        let mut out = String::from(
            "# HELP gray_requests_total Requests served (and mirrored copies), by version and status class.\n\
             # TYPE gray_requests_total counter\n",
        );
        for (name, v) in &versions {
            for (i, n) in v.requests.iter().enumerate() {
                let class = i + 1;
                let _ = writeln!(
                    out,
                    "gray_requests_total{{version=\"{name}\",class=\"{class}xx\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP gray_request_duration_seconds Time from the routing decision to the \
             response, by version.\n\
             # TYPE gray_request_duration_seconds histogram\n",
        );
        for (name, v) in &versions {
            let mut cumulative = 0;
            for (i, n) in v.latency.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), f64::to_string);
                let _ = writeln!(
                    out,
                    "gray_request_duration_seconds_bucket{{version=\"{name}\",le=\"{le}\"}} \
                     {cumulative}"
                );
            }
            let sum = v.latency_sum;
            let _ = writeln!(
                out,
                "gray_request_duration_seconds_sum{{version=\"{name}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "gray_request_duration_seconds_count{{version=\"{name}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gray_rejected_labels_total Incoming labels refused: any at an edge, \
             undeclared or too long ones where labels are inherited.\n\
             # TYPE gray_rejected_labels_total counter\n\
             gray_rejected_labels_total {}",
            self.rejected_labels
        );
        let reloads = &self.reloads;
        let _ = writeln!(
            out,
            "# HELP gray_config_reloads_total Reloads of the rules, by result: applied, or \
             refused (the rules in force stayed).\n\
             # TYPE gray_config_reloads_total counter\n\
             gray_config_reloads_total{{result=\"applied\"}} {}\n\
             gray_config_reloads_total{{result=\"refused\"}} {}\n\
             # HELP gray_config_last_reload_successful 1 unless the last reload was refused.\n\
             # TYPE gray_config_last_reload_successful gauge\n\
             gray_config_last_reload_successful {}\n\
             # HELP gray_config_last_reload_success_timestamp_seconds When the rules were \
             last loaded, in seconds since the Unix epoch.\n\
             # TYPE gray_config_last_reload_success_timestamp_seconds gauge\n\
             gray_config_last_reload_success_timestamp_seconds {}\n\
             # HELP gray_config_info The rules in force, by fingerprint: the same in every \
             process that runs the same rules.\n\
             # TYPE gray_config_info gauge\n\
             gray_config_info{{fingerprint=\"{}\"}} 1",
            reloads.applied,
            reloads.refused,
            u8::from(reloads.last_reload_successful()),
            reloads.loaded_at_unix(),
            reloads.fingerprint_hex(),
        );
        out.push_str(
            "# HELP gray_split_weight The percent of a split route's requests each version \
             gets under the rules in force.\n\
             # TYPE gray_split_weight gauge\n",
        );
        for (route, version, weight) in &self.in_force.weights {
            let (route, version) = (escape_label(route), escape_label(version));
            let _ = writeln!(
                out,
                "gray_split_weight{{route=\"{route}\",version=\"{version}\"}} {weight}"
            );
        }
        out.push_str(
            "# HELP gray_version_available 0 while a version is marked unavailable (its \
             requests served by the default version), else 1.\n\
             # TYPE gray_version_available gauge\n",
        );
        for (version, available) in &self.in_force.available {
            let version = escape_label(version);
            let _ = writeln!(
                out,
                "gray_version_available{{version=\"{version}\"}} {}",
                u8::from(*available)
            );
        }
        out
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("canary"), "canary");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
