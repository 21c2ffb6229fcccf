//! The web dashboard: files embedded at build time from `assets/` (see
//! `build.rs`; plain HTML, JavaScript and CSS, no build step, a vendored
//! uPlot), served at `/assets/…`, and the page itself at `/` and at every
//! client route. Every response carries a strict Content-Security-Policy
//! (no inline script or style, nothing from elsewhere) and the usual
//! hardening headers.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The Content-Security-Policy of every dashboard response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// An asset: its bytes, content type and ETag.
type Entry = (&'static [u8], &'static str, String);

/// Each asset by path, with its ETag (a digest of its bytes).
static BY_PATH: LazyLock<HashMap<&'static str, Entry>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(path, bytes, mime)| {
            let etag = format!("\"{}\"", &bot_auth::digest_hex(bytes)[..32]);
            (*path, (*bytes, *mime, etag))
        })
        .collect()
});

/// The dashboard's routes (no token needed: the page logs in itself).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/login", get(page))
        .route("/fleet", get(page))
        .route("/tasks", get(page))
        .route("/tasks/{id}", get(page))
        .route("/agents/{id}", get(page))
        .route("/checks", get(page))
        .route("/events", get(page))
        .route("/assets/{*path}", get(asset))
}

fn harden(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some((bytes, mime, etag)) = BY_PATH.get(path) else {
        let mut r = (
            StatusCode::NOT_FOUND,
            axum::Json(bot_proto::api::ApiError {
                error: format!(
                    "no such file: /assets/{}",
                    path.chars().take(100).collect::<String>()
                ),
            }),
        )
            .into_response();
        harden(&mut r);
        return r;
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, *bytes).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    // Revalidated every time (cheap: a 304), so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    harden(&mut r);
    r
}

async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_chart_library_are_embedded() {
        assert!(BY_PATH.contains_key("index.html"), "{:?}", BY_PATH.keys());
        assert!(BY_PATH.contains_key("vendor/uPlot.iife.min.js"));
        let r = serve("index.html", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("index.html", &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            serve("../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
