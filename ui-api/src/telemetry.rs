//! The HTTP surface's figures for `/metrics`: every request by route, method and status, its
//! latency by route and method (the route as the router matched it, `/api/v1/runs/{trace_id}`,
//! so labels stay bounded), and whether the store answers a health query at scrape time.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

use crate::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Answered {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug)]
pub struct ApiTelemetry {
    requests: Family<Answered, Counter>,
    latency: Family<Route, Histogram>,
    /// Requests taken and not yet answered (or given up by their client).
    in_flight: Gauge,
    /// Set at each scrape, from the store's health query.
    pub store_up: Gauge,
}

impl Default for ApiTelemetry {
    fn default() -> Self {
        ApiTelemetry {
            requests: Family::default(),
            // 1 ms to about 33 s, doubling: a page of runs to a broad investigation.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            in_flight: Gauge::default(),
            store_up: Gauge::default(),
        }
    }
}

impl ApiTelemetry {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vigil_http_requests",
            "HTTP requests answered, by route, method and status.",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "vigil_http_request_duration",
            "From a request's arrival to its answer's headers, by route and method.",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register(
            "vigil_http_requests_in_flight",
            "HTTP requests being answered now (the scrape asking among them).",
            self.in_flight.clone(),
        );
        registry.register(
            "vigil_store_up",
            "1 when the store answers a health query now.",
            self.store_up.clone(),
        );
    }
}

/// Middleware: counts and times every request the router matched (unmatched paths are 404s of
/// no route, counted under `route="unmatched"`).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    // Bounded: any other method a client invents counts as `other`.
    let method = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let telemetry = &state.telemetry;
    telemetry.in_flight.inc();
    // Counted down however the request ends, its client gone included.
    let _answered = InFlight(&telemetry.in_flight);
    let response = next.run(request).await;
    telemetry
        .latency
        .get_or_create(&Route {
            route: route.clone(),
            method,
        })
        .observe(started.elapsed().as_secs_f64());
    telemetry
        .requests
        .get_or_create(&Answered {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// Takes one off the in-flight gauge when dropped.
struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
