//! The web client's files (`web_dir`, the built `web/dist`), served on the clients' listener
//! beside the WebSocket: a fallback behind the API routes, so `/v1/websocket` and `/health`
//! keep their handlers and every other GET or HEAD is looked up in the directory.
//!
//! Files come from tower-http's `ServeDir` (it refuses `..` and other components that would
//! leave the directory, percent-encoded or not, and guesses content types from the file
//! extension). Every response it gives, 404s included, carries the security headers below;
//! `Cache-Control` depends on whether the file name is content-hashed.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The page may load scripts, styles, images, the manifest and the service worker from this
/// origin only, talk to this origin only (the WebSocket included), and instantiate wasm
/// (`'wasm-unsafe-eval'` permits WebAssembly compilation, not JavaScript `eval`). No inline
/// script or style, no plugins, no framing, no form posts, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; manifest-src 'self'; \
     worker-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Vite writes content-hashed bundles here: a name never changes meaning, so they are cached
/// for a year. Everything else (index.html, sw.js, the manifest, icons, the wasm core's
/// unhashed `pkg/` files) is revalidated on every use.
const HASHED_PREFIX: &str = "/assets/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("web_dir {path}: {reason}")]
    Dir { path: PathBuf, reason: String },
}

/// A router serving `dir`, checked first: a directory holding `index.html` (the output of
/// `scripts/build-web`). A missing or unbuilt directory is a start-up error, not a server
/// that answers 404 to everyone.
pub fn routes(dir: &Path) -> Result<Router, WebError> {
    let fail = |reason: String| WebError::Dir {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(dir).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        return Err(fail("not a directory".into()));
    }
    if !dir.join("index.html").is_file() {
        return Err(fail(
            "has no index.html (build the web client with scripts/build-web)".into(),
        ));
    }
    let files = ServeDir::new(dir).append_index_html_on_directories(true);
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    Ok(Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_control))
        .layer(header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .layer(header(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ))
        .layer(header(
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ))
        .layer(middleware::from_fn(content_types)))
}

/// `Cache-Control` by path: a year for hashed bundles that were found, revalidation for
/// everything else (an error must not be cached for a year under a name that may appear later).
async fn cache_control(request: Request, next: Next) -> Response {
    let hashed = request.uri().path().starts_with(HASHED_PREFIX);
    let mut response = next.run(request).await;
    let policy = if hashed && response.status().is_success() {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

/// Types that browsers insist on and that extension guessing may not give exactly: wasm
/// streaming compilation needs `application/wasm`, the manifest `application/manifest+json`,
/// module scripts a JavaScript type (charset for text types).
async fn content_types(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let fixed = match Path::new(&path).extension().and_then(|e| e.to_str()) {
        Some("wasm") => "application/wasm",
        Some("webmanifest") => "application/manifest+json",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ if path.ends_with('/') => "text/html; charset=utf-8",
        _ => return response,
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(fixed));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, StatusCode};
    use tower::ServiceExt;

    /// A built-looking web dir inside a temp dir, with a secret file beside it.
    fn site() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dist = tmp.path().join("dist");
        std::fs::create_dir_all(dist.join("assets")).unwrap();
        std::fs::create_dir_all(dist.join("pkg")).unwrap();
        std::fs::write(dist.join("index.html"), "<!doctype html><title>Sirr</title>").unwrap();
        std::fs::write(dist.join("sw.js"), "self.addEventListener('fetch', () => {});").unwrap();
        std::fs::write(dist.join("assets/index-AbC123.js"), "export {};").unwrap();
        std::fs::write(dist.join("assets/index-AbC123.css"), "body{}").unwrap();
        std::fs::write(dist.join("manifest.webmanifest"), "{\"name\":\"Sirr\"}").unwrap();
        std::fs::write(dist.join("pkg/sirr_web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(dist.join("icon.svg"), "<svg/>").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "TOP SECRET").unwrap();
        (tmp, dist)
    }

    async fn get(app: &Router, method: Method, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app
            .clone()
            .oneshot(
                axum::http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn value(h: &axum::http::HeaderMap, name: HeaderName) -> &str {
        h.get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn index_types_and_cache_control() {
        let (_tmp, dist) = site();
        let app = routes(&dist).unwrap();
        for (uri, ty, cache) in [
            ("/", "text/html; charset=utf-8", REVALIDATE),
            ("/index.html", "text/html; charset=utf-8", REVALIDATE),
            ("/sw.js", "text/javascript; charset=utf-8", REVALIDATE),
            ("/manifest.webmanifest", "application/manifest+json", REVALIDATE),
            ("/pkg/sirr_web_bg.wasm", "application/wasm", REVALIDATE),
            ("/icon.svg", "image/svg+xml", REVALIDATE),
            (
                "/assets/index-AbC123.js",
                "text/javascript; charset=utf-8",
                IMMUTABLE,
            ),
            ("/assets/index-AbC123.css", "text/css; charset=utf-8", IMMUTABLE),
        ] {
            let (status, h, body) = get(&app, Method::GET, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(value(&h, header::CONTENT_TYPE), ty, "{uri}");
            assert_eq!(value(&h, header::CACHE_CONTROL), cache, "{uri}");
            assert!(!body.is_empty(), "{uri}");
        }
        let (_, _, body) = get(&app, Method::GET, "/").await;
        assert!(body.contains("<title>Sirr</title>"));
        // HEAD works (the app probes for the wasm core with it) and a missing file is a 404
        // that is not cached for a year.
        let (status, h, _) = get(&app, Method::HEAD, "/pkg/sirr_web.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(value(&h, header::CACHE_CONTROL), REVALIDATE);
        let (status, h, _) = get(&app, Method::GET, "/assets/index-Missing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(value(&h, header::CACHE_CONTROL), REVALIDATE);
    }

    #[tokio::test]
    async fn every_response_carries_the_security_headers() {
        let (_tmp, dist) = site();
        let app = routes(&dist).unwrap();
        for uri in ["/", "/assets/index-AbC123.js", "/nope", "/../secret.txt"] {
            let (_, h, _) = get(&app, Method::GET, uri).await;
            assert_eq!(
                value(&h, header::CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY,
                "{uri}"
            );
            assert_eq!(value(&h, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{uri}");
            assert_eq!(value(&h, header::REFERRER_POLICY), "no-referrer", "{uri}");
        }
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "connect-src 'self'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(directive));
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    }

    #[tokio::test]
    async fn nothing_outside_the_directory_is_served() {
        let (_tmp, dist) = site();
        let app = routes(&dist).unwrap();
        for uri in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/assets/../../secret.txt",
            "/assets/%2e%2e/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/..%5csecret.txt",
            "//etc/passwd",
            "/%2fetc%2fpasswd",
        ] {
            let (status, _, body) = get(&app, Method::GET, uri).await;
            assert!(!status.is_success(), "{uri} gave {status}");
            assert!(!body.contains("TOP SECRET"), "{uri} leaked the file");
            assert!(!body.contains("root:"), "{uri} leaked /etc/passwd");
        }
        // Only reads.
        let (status, _, _) = get(&app, Method::POST, "/index.html").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn a_missing_or_unbuilt_directory_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = routes(&tmp.path().join("absent")).unwrap_err().to_string();
        assert!(err.contains("absent"), "{err}");
        let err = routes(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no index.html"), "{err}");
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        let err = routes(&tmp.path().join("file")).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
