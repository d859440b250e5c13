//! Which upstream a connection goes to: by the TLS server name, else the listener's
//! upstream. Rebuilt on reload and swapped atomically; looked up once per connection.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Listener;
use crate::upstream::Upstream;

/// One upstream as the forwarders use it.
#[derive(Debug)]
pub struct Target {
    pub upstream: Upstream,
}

#[derive(Debug)]
pub struct RouteTable {
    default: Arc<Target>,
    by_name: HashMap<String, Arc<Target>>,
}

impl RouteTable {
    pub fn of(listener: &Listener) -> Self {
        Self {
            default: Arc::new(Target {
                upstream: listener.upstream.clone(),
            }),
            by_name: listener
                .routes
                .iter()
                .map(|r| {
                    (
                        r.server_name.clone(),
                        Arc::new(Target {
                            upstream: r.upstream.clone(),
                        }),
                    )
                })
                .collect(),
        }
    }

    pub fn pick(&self, server_name: Option<&str>) -> &Arc<Target> {
        server_name
            .and_then(|n| self.by_name.get(n))
            .unwrap_or(&self.default)
    }
}

/// A listener's routes, replaced on reload.
pub type Routes = Arc<ArcSwap<RouteTable>>;
