//! What one `vigil serve` process runs (`--components`), and the parts of the HTTP surface that
//! follow from it: a node without `ingest` takes no traces, one without `query` answers no REST
//! call and serves no web UI. `/healthz`, `/readyz` and `/metrics` are on every node.

use std::{collections::BTreeSet, fmt, str::FromStr};

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ApiError, AppState};

/// A part of Vigil that a process can run on its own.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// Takes traces: gRPC (native and OTLP) and OTLP/HTTP.
    Ingest,
    /// Answers: the REST API and the web UI.
    Query,
    /// The work done once for all nodes: alert evaluation and notification, retention, sealing.
    Alerting,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Ingest, Component::Query, Component::Alerting];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Ingest => "ingest",
            Component::Query => "query",
            Component::Alerting => "alerting",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Component {
    type Err = String;

    fn from_str(name: &str) -> Result<Component, String> {
        Component::ALL
            .into_iter()
            .find(|c| c.as_str() == name.trim())
            .ok_or_else(|| format!("{name:?} is not a component: ingest, query or alerting"))
    }
}

/// The components one process runs: never none.
pub type Components = BTreeSet<Component>;

/// Where a request belongs.
fn component_of(path: &str) -> Option<Component> {
    match path {
        "/healthz" | "/readyz" | "/metrics" => None,
        // The Langfuse SDKs check their key at /api/public/projects before they send.
        "/v1/traces" | "/api/public/otel/v1/traces" | "/api/public/projects" => {
            Some(Component::Ingest)
        }
        _ => Some(Component::Query),
    }
}

/// Answers 404 (`not_served`) to a request for a component this process does not run.
pub async fn only_served(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match component_of(request.uri().path()) {
        Some(component) if !state.components.contains(&component) => {
            let running: Vec<&str> = state.components.iter().map(|c| c.as_str()).collect();
            ApiError::not_served(format!(
                    "this node runs {} (vigil serve --components): {} is served by the nodes running {component}",
                    running.join(","),
                    match component {
                        Component::Ingest => "trace ingest",
                        _ => "the REST API and the web UI",
                }
            ))
            .into_response()
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_paths_belong_to_one_component() {
        for component in Component::ALL {
            assert_eq!(component.as_str().parse::<Component>(), Ok(component));
            let json = serde_json::to_string(&component).unwrap();
            assert_eq!(json, format!("\"{component}\""));
        }
        assert!(
            "ingestion"
                .parse::<Component>()
                .unwrap_err()
                .contains("ingestion")
        );
        assert_eq!(component_of("/readyz"), None);
        assert_eq!(component_of("/v1/traces"), Some(Component::Ingest));
        assert_eq!(component_of("/api/v1/runs"), Some(Component::Query));
        assert_eq!(component_of("/"), Some(Component::Query));
    }
}
