//! [`RouteCheck`]: why each route did or did not take a request, for dry runs and
//! debugging (`Gray::explain`). Not on the request path.

use super::compiled::Engine;
use super::request::RequestView;
use super::values::Values;

/// How one route fared with a request: it took it, or which of its conditions failed.
///
/// Routes are tried in order and the first whose conditions all hold decides, so an
/// explanation lists the routes up to and including that one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteCheck {
    /// The route's name.
    pub route: String,
    /// Where in the config the first condition that did not hold is, e.g.
    /// `match.headers[0]` (conditions are tried in this order: headers, query, cookies,
    /// path, method, client_ip); `None` when they all held and the route took the request.
    pub failed: Option<String>,
}

impl Engine {
    /// The routes tried for `req`, as [`RouteCheck`]s, up to the one that takes it.
    pub(crate) fn explain<R: RequestView + ?Sized>(&self, req: &R) -> Vec<RouteCheck> {
        let mut values = Values::new(req, &self.reads);
        if !self.reads.header_names.is_empty() {
            values.scan(&self.reads.header_names);
        }
        let mut checks = Vec::new();
        for route in self.routes.iter() {
            let failed = route
                .conditions
                .iter()
                .position(|c| !c.holds(&mut values))
                .map(|i| {
                    route
                        .condition_paths
                        .get(i)
                        .map_or("match", |p| p)
                        .to_owned()
                });
            let took = failed.is_none();
            checks.push(RouteCheck {
                route: route.name.to_string(),
                failed,
            });
            if took {
                break;
            }
        }
        checks
    }
}
