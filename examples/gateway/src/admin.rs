//! The gateway's own endpoints: `GET /gray/status`, `GET /gray/metrics`, and on the
//! admin listener the rollout's `POST /gray/rollout/…`.

use std::collections::BTreeMap;

use gray_core::metrics::Reloads;
use gray_core::rollout::RolloutStatus;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::proxy::{Proxy, ProxyBody, json, text};
use crate::rollout::Action;

/// A request on the admin listener (`--admin`): the read-only endpoints, and the ones that
/// change state — never answered on the proxy's port.
pub(crate) async fn answer(proxy: &Proxy, req: Request<Incoming>) -> Response<ProxyBody> {
    if let Some(res) = proxy.admin(&req) {
        return res;
    }
    // Where Prometheus looks by default; on the admin listener only, since on the proxy's
    // port the path is the upstreams'.
    if req.method() == Method::GET && req.uri().path() == "/metrics" {
        return proxy.metrics();
    }
    if req.method() != Method::POST {
        return not_found();
    }
    match req.uri().path() {
        "/gray/rollout/roll-back" => proxy.order_rollout(Action::RollBack).await,
        "/gray/rollout/promote" => proxy.order_rollout(Action::Promote).await,
        "/gray/rollout/pause" => proxy.order_rollout(Action::Pause).await,
        "/gray/rollout/resume" => proxy.order_rollout(Action::Resume).await,
        _ => not_found(),
    }
}

impl Proxy {
    /// The gateway's own endpoints (`GET /gray/status`, `GET /gray/metrics`): answered
    /// before any rule, and not counted as traffic.
    pub(crate) fn admin(&self, req: &Request<Incoming>) -> Option<Response<ProxyBody>> {
        if req.method() != Method::GET {
            return None;
        }
        match req.uri().path() {
            "/gray/status" => Some(self.status()),
            "/gray/metrics" => Some(self.metrics()),
            _ => None,
        }
    }

    /// The `--rollout`'s status as JSON; `null` without one. A progressing or paused one
    /// says how long its stage has served (`stage_seconds`).
    pub(crate) fn rollout_json(&self) -> serde_json::Value {
        let Some(rollout) = self.rollout.get() else {
            return serde_json::Value::Null;
        };
        let status = rollout.status();
        let mut json = match &status {
            RolloutStatus::Pending => serde_json::json!({ "state": "pending" }),
            RolloutStatus::Progressing { stage, weight } => {
                serde_json::json!({ "state": "progressing", "stage": stage, "weight": weight })
            }
            RolloutStatus::Paused {
                stage,
                weight,
                reason,
            } => serde_json::json!({
                "state": "paused", "stage": stage, "weight": weight, "reason": reason
            }),
            RolloutStatus::RolledBack { reason } => {
                serde_json::json!({ "state": "rolled back", "reason": reason })
            }
            RolloutStatus::Completed { weight } => {
                serde_json::json!({ "state": "completed", "weight": weight })
            }
            other => serde_json::json!({ "state": format!("{other:?}") }),
        };
        if let Some(elapsed) = rollout.stage_elapsed() {
            json["stage_seconds"] = serde_json::json!(elapsed.as_secs());
        }
        json
    }

    /// The Prometheus text: the per-version series, then the endpoints'.
    fn metrics(&self) -> Response<ProxyBody> {
        let mut body = self.gray.metrics().prometheus();
        self.endpoint_metrics(&mut body);
        let mut res = text(StatusCode::OK, body);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        res
    }

    /// The endpoints' own series, after the per-version ones: requests sent to each,
    /// times each was taken out, whether it is in; and retries per version.
    fn endpoint_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let series = [
            (
                "gray_gateway_endpoint_requests_total",
                "counter",
                "Requests sent to an endpoint.",
            ),
            (
                "gray_gateway_endpoint_ejections_total",
                "counter",
                "Times an endpoint was taken out: passive ejections and failing health checks.",
            ),
            (
                "gray_gateway_endpoint_up",
                "gauge",
                "1 while an endpoint is in its version's balancing, 0 while it is out.",
            ),
        ];
        for (n, (name, kind, help)) in series.into_iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for upstream in self.upstreams.iter() {
                for e in upstream.endpoints() {
                    let value = match n {
                        0 => e.requests(),
                        1 => e.ejections(),
                        _ => u64::from(!e.is_out()),
                    };
                    let version = upstream.version();
                    let url = e.target();
                    let _ = writeln!(
                        out,
                        "{name}{{version=\"{version}\",endpoint=\"{url}\"}} {value}"
                    );
                }
            }
        }
        let name = "gray_gateway_retries_total";
        let _ = writeln!(
            out,
            "# HELP {name} Requests that failed on an endpoint of a version before any of them was sent, and were sent to another.\n# TYPE {name} counter"
        );
        for upstream in self.upstreams.iter() {
            let _ = writeln!(
                out,
                "{name}{{version=\"{}\"}} {}",
                upstream.version(),
                upstream.retries()
            );
        }
    }

    /// `GET /gray/status`.
    fn status(&self) -> Response<ProxyBody> {
        let config = self.gray.config();
        let metrics = self.gray.metrics();
        let served: BTreeMap<&str, u64> = metrics
            .versions()
            .iter()
            .map(|v| (v.version.as_str(), v.total()))
            .collect();
        let routes: Vec<serde_json::Value> = config
            .routes
            .iter()
            .map(|route| {
                let mut out = serde_json::json!({ "name": route.name });
                if let Some(to) = &route.to {
                    out["to"] = serde_json::json!(to);
                }
                if let Some(split) = &route.split {
                    out["weights"] = serde_json::json!(split.weights);
                    if let Some(by) = &split.by {
                        out["by"] = serde_json::json!(by);
                    }
                    if let Some(cookie) = &split.set_cookie {
                        out["set_cookie"] = serde_json::json!(cookie);
                    }
                }
                if route.matches.is_some() {
                    out["match"] = serde_json::json!(route.matches);
                }
                if route.mirror.is_some() {
                    out["mirror"] = serde_json::json!(route.mirror);
                }
                out
            })
            .collect();
        // Each version's endpoints: requests sent, in flight, times taken out, out now.
        let upstreams: BTreeMap<&str, Vec<serde_json::Value>> = self
            .upstreams
            .iter()
            .map(|u| {
                let endpoints = u
                    .endpoints()
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "url": e.target().to_string(),
                            "requests": e.requests(),
                            "in_flight": e.in_flight(),
                            "ejections": e.ejections(),
                            "out": e.is_out(),
                        })
                    })
                    .collect();
                (u.version(), endpoints)
            })
            .collect();
        // Times each version's endpoints were taken out for not answering (`eject`).
        let ejections: BTreeMap<&str, u64> = self
            .upstreams
            .iter()
            .map(|u| {
                (
                    u.version(),
                    u.endpoints().iter().map(|e| e.ejections()).sum(),
                )
            })
            .collect();
        let retries: BTreeMap<&str, u64> = self
            .upstreams
            .iter()
            .map(|u| (u.version(), u.retries()))
            .collect();
        let status = serde_json::json!({
            "versions": config.versions,
            "routes": routes,
            "upstreams": upstreams,
            "served": served,
            "rejected_labels": self.gray.rejected_labels(),
            "waiting_for_upstreams": self.deadlines.waiting(),
            "unavailable": self.gray.unavailable_versions(),
            "ejections": ejections,
            "retries": retries,
            "rollout": self.rollout_json(),
            "reloads": reloads_json(&self.gray.reloads()),
            "mirror": self.mirrored.json(),
        });
        json(status.to_string())
    }
}

/// What became of the rules file's reloads, and the fingerprint of the rules in force.
fn reloads_json(reloads: &Reloads) -> serde_json::Value {
    serde_json::json!({
        "applied": reloads.applied,
        "refused": reloads.refused,
        "last_error": reloads.last_error,
        "loaded_at": reloads.loaded_at_unix(),
        "fingerprint": reloads.fingerprint_hex(),
    })
}

/// The admin listener's answer to any other request.
fn not_found() -> Response<ProxyBody> {
    text(
        StatusCode::NOT_FOUND,
        "gray: GET /gray/status, GET /gray/metrics, GET /metrics, POST /gray/rollout/roll-back, \
         POST /gray/rollout/promote, POST /gray/rollout/pause, POST /gray/rollout/resume\n"
            .to_owned(),
    )
}
