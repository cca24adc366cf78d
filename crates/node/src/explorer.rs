//! The explorer: a single-page web view of the ledger (network, fleet, firmware, device, audit,
//! transaction), served by every node at `/` with its assets under `/explorer/{file}`.
//!
//! The pages are plain HTML, CSS and JavaScript from `crates/node/explorer/`, embedded in the
//! binary with `include_str!` (no front-end build). They read only the node's JSON API and
//! verify inclusion proofs and checkpoint signatures in the browser (`verify.js`). These routes
//! are not API: they are not in the OpenAPI document.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file of the explorer.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// File name under `/explorer/`.
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The file's text.
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page every route of the single-page app starts from (served at `/`).
pub const INDEX: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    body: include_str!("../explorer/index.html"),
};

/// Every file served under `/explorer/`, by name.
pub const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("../explorer/app.js"),
    },
    Asset {
        name: "verify.js",
        content_type: JS,
        body: include_str!("../explorer/verify.js"),
    },
    Asset {
        name: "style.css",
        content_type: CSS,
        body: include_str!("../explorer/style.css"),
    },
];

/// The embedded asset called `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The explorer's routes: `GET /` (the page) and `GET /explorer/{file}` (its assets).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/explorer/{file}", get(file))
}

async fn file(Path(name): Path<String>) -> Response {
    match asset(&name) {
        Some(a) => serve(a),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no explorer file '{name}'"),
        )
            .into_response(),
    }
}

/// `a` with its content type, revalidated on every load (the binary may have been replaced).
fn serve(a: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        a.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get_path(path: &str) -> (StatusCode, Option<String>, Option<String>, String) {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let resp = router().oneshot(req).await.expect("response");
        let header_of = |name| {
            resp.headers()
                .get(name)
                .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_string())
        };
        let (ct, cc) = (header_of(header::CONTENT_TYPE), header_of(header::CACHE_CONTROL));
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        (status, ct, cc, String::from_utf8(bytes.to_vec()).expect("utf-8"))
    }

    /// Each asset is served under `/explorer/` with its content type, `no-cache`, and its bytes.
    #[tokio::test]
    async fn every_asset_is_served_with_its_content_type() {
        let cases = [
            ("/explorer/index.html", "text/html; charset=utf-8"),
            ("/explorer/app.js", "text/javascript; charset=utf-8"),
            ("/explorer/verify.js", "text/javascript; charset=utf-8"),
            ("/explorer/style.css", "text/css; charset=utf-8"),
        ];
        assert_eq!(cases.len(), ASSETS.len(), "a case per embedded asset");
        for (path, want) in cases {
            let (status, ct, cc, body) = get_path(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(ct.as_deref(), Some(want), "{path}");
            assert_eq!(cc.as_deref(), Some("no-cache"), "{path}");
            let name = path.trim_start_matches("/explorer/");
            assert_eq!(body, asset(name).expect("embedded").body, "{path}");
        }
    }

    /// `/` is the page, and the page loads the scripts and style sheet the router serves.
    #[tokio::test]
    async fn root_serves_the_page_which_names_served_assets() {
        let (status, ct, cc, body) = get_path("/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some(HTML));
        assert_eq!(cc.as_deref(), Some("no-cache"));
        assert_eq!(body, INDEX.body);
        for name in ["app.js", "verify.js", "style.css"] {
            assert!(body.contains(&format!("/explorer/{name}")), "index.html loads {name}");
        }
        assert!(body.contains("data-test=\"search\""), "the global search box");
    }

    /// Unknown files, and paths that try to leave the asset set, are 404.
    #[tokio::test]
    async fn unknown_files_are_not_found() {
        for path in [
            "/explorer/nope.js",
            "/explorer/..%2FCargo.toml",
            "/explorer/APP.JS",
            "/explorer/",
        ] {
            let (status, _, _, _) = get_path(path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }
}
