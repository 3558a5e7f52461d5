//! Headers every HTTP answer carries, whatever answered it (a handler, an error, the web UI, a
//! 404): a browser that is shown an API answer must not sniff it into a page, frame it, or send
//! the address on; and no cache may keep one (they are per key, and some hold secrets).

use axum::{
    http::{HeaderName, HeaderValue, header},
    response::Response,
};

/// Set on every answer.
pub const ALWAYS: [(HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// Set unless the answer chose its own (the web UI's files choose both).
pub const UNLESS_SET: [(HeaderName, &str); 2] = [
    (header::CACHE_CONTROL, "no-store"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// The middleware: adds [`ALWAYS`] and [`UNLESS_SET`].
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in ALWAYS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    for (name, value) in UNLESS_SET {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}
