//! The web UI: the bundle `build.rs` embedded, served at `/`. Files of the bundle are served as
//! they are (hashed names under `/assets/` are cached for a year); every other `GET` that is not
//! the API's answers the app's page, so deep links (`/runs/{trace_id}`, …) reload to the same
//! view. Pages carry a Content-Security-Policy with neither inline script nor `eval`.

use axum::{
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

/// One file of the bundle.
pub struct WebAsset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Everything the page may load comes from this origin; nothing runs inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths that are never the app's, even when nothing there answers.
const NOT_THE_APP: [&str; 6] = [
    "/api/", "/v1/", "/metrics", "/healthz", "/readyz", "/assets/",
];

fn asset(path: &str) -> Option<&'static WebAsset> {
    WEB_ASSETS.iter().find(|a| a.path == path)
}

/// The router's fallback: a file of the bundle, the app's page, or 404.
pub async fn serve(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = uri.path();
    if let Some(file) = asset(path).filter(|a| a.path != "/index.html") {
        let cache = if path.starts_with("/assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return file_response(file, cache);
    }
    let reserved = NOT_THE_APP
        .iter()
        .any(|prefix| path.starts_with(prefix) || path == prefix.trim_end_matches('/'));
    match asset("/index.html") {
        Some(page) if !reserved => file_response(page, "no-cache"),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn file_response(file: &'static WebAsset, cache: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, file.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        file.bytes,
    )
        .into_response();
    // The rest of the security headers are every answer's (`crate::headers`).
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str) -> Response {
        serve(Method::GET, path.parse().unwrap()).await
    }

    fn header(response: &Response, name: header::HeaderName) -> &str {
        response.headers()[name].to_str().unwrap()
    }

    #[tokio::test]
    async fn deep_links_answer_the_app_and_the_api_is_never_the_app() {
        let page = asset("/index.html").expect("the bundle has a page");
        for path in [
            "/",
            "/runs",
            "/runs/0af7651916cd43dd8448eb211c80319c",
            "/settings/keys",
        ] {
            let response = get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&response, header::CONTENT_TYPE), page.content_type);
            assert_eq!(header(&response, header::CACHE_CONTROL), "no-cache");
            let policy = header(&response, header::CONTENT_SECURITY_POLICY);
            assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe"));
        }
        for path in [
            "/api/v1/nothing",
            "/v1/logs",
            "/metrics",
            "/healthz/x",
            "/assets/gone.js",
        ] {
            assert_eq!(get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let post = serve(Method::POST, "/runs".parse().unwrap()).await;
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn bundle_files_are_served_with_their_type() {
        for file in WEB_ASSETS.iter().filter(|a| a.path != "/index.html") {
            let response = get(file.path).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", file.path);
            assert_eq!(header(&response, header::CONTENT_TYPE), file.content_type);
            if file.path.starts_with("/assets/") {
                assert!(header(&response, header::CACHE_CONTROL).contains("immutable"));
            }
        }
    }
}
